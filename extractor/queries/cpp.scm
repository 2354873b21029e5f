; C++ (tree-sitter-cpp 0.23; .cpp .cc .cxx .hpp .hh .hxx) -- capture names follow
; extractor/queries/README.md.
;
; Covered:
;   definitions  `class` / `struct` / `union` (as struct) with a body; `enum` / `enum class` with a
;                body; C-style `typedef struct {..} T;` (struct T); function definitions at namespace level (free functions), inside a class
;                body (methods, incl. constructors and `= default`/`= delete` ones), and out of
;                line `R Type::method(..) {..}` (method, @owner = Type; also with pointer or
;                reference return types); pure virtual declarations `virtual R f() = 0;` (a method
;                of the class: the interface other code calls). Namespaces are not definitions, so
;                qualnames do not include them (`geo::Circle::area` is `Circle.area`).
;                Templates: the span is the templated declaration itself, without the
;                `template <..>` line.
;   calls        `f()`, `obj.m()`, `ptr->m()`, `this->m()` (@receiver = the object expression),
;                `ns::f()` / `Type::f()` (@receiver = the scope), `f<T>()`, `ns::f<T>()`,
;                and `new T(..)` / `new ns::T(..)` as a call of T.
;   throws       `throw T(..)`, `throw ns::T(..)`, `throw T{..}`, `throw new T(..)`; a bare
;                `throw;` or `throw err;` names no type and is skipped.
;   inheritance  base classes of a class/struct (`: public A, private ns::B<int>`) as extends.
;   imports      `#include "path.hpp"` (@import.module = the path between the quotes).
;
; Deliberately not covered:
;   - member function declarations without a body other than pure virtual ones (the out-of-line
;     definition is the node), free-function prototypes, destructors (`~T`), operators, conversion
;     functions, lambdas, friend declarations;
;   - out-of-line definitions nested two scopes deep (`ns::T::f` written in full) and definitions
;     of namespace functions written as `ns::f(..) {..}` (they would look like methods of `ns`);
;   - `#include <system>`, `using` declarations and `using namespace`, `import` modules;
;   - constructor calls without `new` (`T x(1);`, `T{1}`, `std::make_unique<T>(..)`).

; ---------------------------------------------------------------- type definitions

(class_specifier
  name: (type_identifier) @name
  body: (field_declaration_list) @body) @definition.class

(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list) @body) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list) @body) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list) @body) @definition.enum

; C-style `typedef struct {..} T;` (anonymous struct named by its typedef; span = the typedef)
(type_definition
  type: (struct_specifier
    !name
    body: (field_declaration_list) @body)
  declarator: (type_identifier) @name) @definition.struct

; ---------------------------------------------------------------- functions and methods

; free functions and in-class methods (the engine makes a function inside a class a method)
(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier)] @name)
  body: (compound_statement) @body) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [(identifier) (field_identifier)] @name))
  body: (compound_statement) @body) @definition.function

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [(identifier) (field_identifier)] @name))
  body: (compound_statement) @body) @definition.function

; in-class `T() = default;` / `= delete;` (no body)
(field_declaration_list
  (function_definition
    declarator: (function_declarator
      declarator: [(identifier) (field_identifier)] @name)
    !body) @definition.function)

; out-of-line methods: R Type::name(..) {..}
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      scope: [
        (namespace_identifier) @owner
        (template_type name: (type_identifier) @owner)
      ]
      name: (identifier) @name))
  body: (compound_statement) @body) @definition.method

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (qualified_identifier
        scope: [
          (namespace_identifier) @owner
          (template_type name: (type_identifier) @owner)
        ]
        name: (identifier) @name)))
  body: (compound_statement) @body) @definition.method

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: (qualified_identifier
        scope: [
          (namespace_identifier) @owner
          (template_type name: (type_identifier) @owner)
        ]
        name: (identifier) @name)))
  body: (compound_statement) @body) @definition.method

; pure virtual: virtual R f(..) = 0;
(field_declaration_list
  (field_declaration
    declarator: (function_declarator
      declarator: (field_identifier) @name)
    default_value: (number_literal) @_zero
    (#eq? @_zero "0")) @definition.method)

(field_declaration_list
  (field_declaration
    declarator: [
      (pointer_declarator (function_declarator declarator: (field_identifier) @name))
      (reference_declarator (function_declarator declarator: (field_identifier) @name))
    ]
    default_value: (number_literal) @_zero
    (#eq? @_zero "0")) @definition.method)

; ---------------------------------------------------------------- calls

(call_expression
  function: (identifier) @name) @reference.call

(call_expression
  function: (field_expression
    argument: (_) @receiver
    field: (field_identifier) @name)) @reference.call

(call_expression
  function: (qualified_identifier
    scope: (_) @receiver
    name: (identifier) @name)) @reference.call

(call_expression
  function: (template_function
    name: (identifier) @name)) @reference.call

(call_expression
  function: (qualified_identifier
    scope: (_) @receiver
    name: (template_function
      name: (identifier) @name))) @reference.call

(call_expression
  function: (field_expression
    argument: (_) @receiver
    field: (template_method
      name: (field_identifier) @name))) @reference.call

(new_expression
  type: (type_identifier) @name) @reference.call

(new_expression
  type: (qualified_identifier
    scope: (_) @receiver
    name: (type_identifier) @name)) @reference.call

; ---------------------------------------------------------------- throws

(throw_statement
  [
    (call_expression function: (identifier) @name)
    (call_expression function: (qualified_identifier name: (identifier) @name))
    (compound_literal_expression type: (type_identifier) @name)
    (compound_literal_expression type: (qualified_identifier name: (type_identifier) @name))
    (new_expression type: (type_identifier) @name)
    (new_expression type: (qualified_identifier name: (type_identifier) @name))
  ]) @reference.throw

; ---------------------------------------------------------------- inheritance

(base_class_clause
  [
    (type_identifier) @inherit.extends
    (qualified_identifier name: (type_identifier) @inherit.extends)
    (template_type name: (type_identifier) @inherit.extends)
    (qualified_identifier name: (template_type name: (type_identifier) @inherit.extends))
  ])

; ---------------------------------------------------------------- imports

(preproc_include
  path: (string_literal (string_content) @import.module)) @import

; Go (tree-sitter-go 0.25) -- capture names follow extractor/queries/README.md.
;
; Covered:
;   definitions  `type X struct {...}` (struct), `type X interface {...}` (interface) and the
;                method specs inside an interface (methods of it); `func F()` (function);
;                `func (r *T) M()` / `func (r T[K]) M()` (method, @owner = receiver type);
;                generic type parameters are fine. Span: the whole `type X ...` declaration
;                when it declares one type (also `type ( X .. )`); in a grouped
;                `type ( A ..; B .. )` block each spec has its own span.
;   calls        `F()`, `pkg.F()`, `x.M()`, `x.y.M()` (@receiver = the operand expression).
;   throws       Go has no throw; an error *value of a named type* built at a raise site counts:
;                `panic(T{})`, `panic(&T{})`, `panic(pkg.T{})`, and `return ..., &T{...}` /
;                `return ..., T{...}` when the type name looks like an error (`Err*`, `*Error`),
;                e.g. `return &NotFoundError{}` or `return &fs.PathError{}`.
;   inheritance  struct embedding (`type A struct { B; *pkg.C }`) as extends A -> B; interface
;                embedding (`type R interface { io.Reader }`) as extends.
;   imports      every import spec: plain, aliased (`u "x/util"`), dot (`. "x"` = wildcard);
;                `_` imports count as plain imports. @import.module is the path without quotes.
;
; Deliberately not covered:
;   - implicit interface satisfaction (no `implements` edges: Go has no syntax for it);
;   - other named types (`type Kind int`, `type Fn func()`, aliases), consts, vars, func literals;
;   - `errors.New(...)` / `fmt.Errorf(...)` (plain calls to the standard library, not typed errors);
;     `panic("text")` carries no type;
;   - calls of func-typed values through index/paren expressions (`fs[i]()`, `(f)()`) and
;     explicitly instantiated generic calls `F[int](x)` (the grammar parses them as type
;     conversions).

; ---------------------------------------------------------------- definitions

; A declaration with a single spec (`type X struct {..}`) is captured whole, so the doc comment
; above `type` belongs to it; specs of a grouped `type ( A ..; B .. )` are captured one by one.
(type_declaration .
  (type_spec
    name: (type_identifier) @name
    type: (struct_type (field_declaration_list) @body)) .) @definition.struct

(type_declaration
  (type_spec
    name: (type_identifier) @name
    type: (struct_type (field_declaration_list) @body)) @definition.struct
  (type_spec))

(type_declaration
  (type_spec)
  (type_spec
    name: (type_identifier) @name
    type: (struct_type (field_declaration_list) @body)) @definition.struct)

(type_declaration .
  (type_spec
    name: (type_identifier) @name
    type: (interface_type) @body) .) @definition.interface

(type_declaration
  (type_spec
    name: (type_identifier) @name
    type: (interface_type) @body) @definition.interface
  (type_spec))

(type_declaration
  (type_spec)
  (type_spec
    name: (type_identifier) @name
    type: (interface_type) @body) @definition.interface)

(interface_type
  (method_elem
    name: (field_identifier) @name) @definition.method)

(function_declaration
  name: (identifier) @name
  body: (block) @body) @definition.function

; methods: receiver `T`, `*T`, `T[K]`, `*T[K]`
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [
        (type_identifier) @owner
        (pointer_type (type_identifier) @owner)
        (generic_type type: (type_identifier) @owner)
        (pointer_type (generic_type type: (type_identifier) @owner))
      ]))
  name: (field_identifier) @name
  body: (block) @body) @definition.method

; ---------------------------------------------------------------- calls

(call_expression
  function: (identifier) @name) @reference.call

(call_expression
  function: (selector_expression
    operand: (_) @receiver
    field: (field_identifier) @name)) @reference.call


; ---------------------------------------------------------------- throws

(call_expression
  function: (identifier) @_panic
  arguments: (argument_list
    [
      (composite_literal type: (type_identifier) @name)
      (composite_literal type: (qualified_type name: (type_identifier) @name))
      (unary_expression operand: (composite_literal type: (type_identifier) @name))
      (unary_expression operand: (composite_literal type: (qualified_type name: (type_identifier) @name)))
    ])
  (#eq? @_panic "panic")) @reference.throw

(return_statement
  (expression_list
    [
      (composite_literal type: (type_identifier) @name)
      (composite_literal type: (qualified_type name: (type_identifier) @name))
      (unary_expression operand: (composite_literal type: (type_identifier) @name))
      (unary_expression operand: (composite_literal type: (qualified_type name: (type_identifier) @name)))
    ])
  (#match? @name "(^Err|Error$)")) @reference.throw

; ---------------------------------------------------------------- inheritance (embedding)

(struct_type
  (field_declaration_list
    (field_declaration
      !name
      type: [
        (type_identifier) @inherit.extends
        (pointer_type (type_identifier) @inherit.extends)
        (qualified_type name: (type_identifier) @inherit.extends)
        (pointer_type (qualified_type name: (type_identifier) @inherit.extends))
        (generic_type type: (type_identifier) @inherit.extends)
      ])))

(interface_type
  (type_elem
    [
      (type_identifier) @inherit.extends
      (qualified_type name: (type_identifier) @inherit.extends)
    ]))

; ---------------------------------------------------------------- imports

(import_spec
  !name
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module)) @import

(import_spec
  name: (package_identifier) @import.alias
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module)) @import

(import_spec
  name: (dot) @import.wildcard
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module)) @import

(import_spec
  name: (blank_identifier)
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module)) @import

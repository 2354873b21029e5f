; C (tree-sitter-c 0.24; also used for .h headers) -- capture names follow
; extractor/queries/README.md.
;
; Covered:
;   definitions  function definitions (any return type: plain, pointer `T *f()`, `T **f()`,
;                static/inline); `struct S {..}` and `union U {..}` with a body (union as struct);
;                `typedef struct {..} T;` (anonymous struct named by its typedef; the span is the
;                whole typedef); `enum E {..}` and `typedef enum {..} T;`. A tagged struct inside
;                a typedef (`typedef struct s {..} s_t;`) is the struct `s`.
;   calls        `f(..)` by identifier. Calls through function pointers in struct fields
;                (`ops->push(..)`, `(*fp)(..)`) are deliberately left out: C has no methods, so no
;                static target exists.
;   imports      `#include "path.h"` (@import.module = the path between the quotes).
;
; Deliberately not covered:
;   - prototypes (`int f(int);`) and forward declarations (`struct s;`): the definition in the .c
;     file is the node; calls are resolved to it through the included header;
;   - `#include <system.h>` (never part of the repository), macros (`#define`, function-like
;     macro calls resolve to nothing), typedefs of non-struct types, globals;
;   - throws and inheritance: C has neither.

; ---------------------------------------------------------------- definitions

(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)
  body: (compound_statement) @body) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (identifier) @name))
  body: (compound_statement) @body) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: (identifier) @name)))
  body: (compound_statement) @body) @definition.function

(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list) @body) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list) @body) @definition.struct

(type_definition
  type: (struct_specifier
    !name
    body: (field_declaration_list) @body)
  declarator: (type_identifier) @name) @definition.struct

(type_definition
  type: (union_specifier
    !name
    body: (field_declaration_list) @body)
  declarator: (type_identifier) @name) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list) @body) @definition.enum

(type_definition
  type: (enum_specifier
    !name
    body: (enumerator_list) @body)
  declarator: (type_identifier) @name) @definition.enum

; ---------------------------------------------------------------- calls

(call_expression
  function: (identifier) @name) @reference.call

; ---------------------------------------------------------------- imports

(preproc_include
  path: (string_literal (string_content) @import.module)) @import

; Rust (tree-sitter-rust 0.24) -- capture names follow extractor/queries/README.md.
;
; Covered:
;   definitions  `struct` (incl. tuple/unit structs), `enum`, `union` (as struct), `trait`;
;                `fn` items anywhere (free functions; inside `impl` blocks they become methods of
;                the impl's type through @scope.impl; inside a `trait` they are methods of the
;                trait); required trait methods without a body (`fn area(&self) -> f64;`) are
;                methods of the trait too. Spans are the item's own node, so outer attributes
;                (`#[test]`, `#[derive(..)]`) and doc comments above it are not part of the span.
;   impl scope   `impl T {..}`, `impl<K> T<K> {..}`, `impl Tr for T {..}`, `impl Tr for path::T`.
;   calls        `f()`, `path::f()`, `Type::f()`, `Self::f()` (@receiver = the path),
;                `x.m()` / `self.m()` / `a.b().m()` (@receiver = the value expression),
;                turbofish `f::<T>()` / `x.m::<T>()`.
;   throws       Rust has no throw; an `Err(..)` whose payload names a type counts as a throw of
;                that type: `Err(E::Variant(..))`, `Err(E::Variant)`, `Err(E::new(..))`,
;                `Err(E { .. })`, `Err(Unit)` -> E / Unit; `Err(fmt::Error)`, `Err(io::Error::new(..))`,
;                `Err(path::E::Variant)` -> Error / E (a lowercase path segment is a module).
;   inheritance  `impl Trait for Type` -> implements (@source = Type, the trait's last path
;                segment, generics stripped); supertraits `trait A: B + C` -> extends A -> B, C.
;   imports      `use` declarations: `use a::b::C;`, `use a::b::C as D;`, `use a::b::{C, D as E,
;                self};`, `use a::b::*;`, `use a;` (@import.module is the path as written, e.g.
;                `crate::util`, `super::x`, `geom::shapes`); `mod x;` declarations import module x.
;
; Deliberately not covered:
;   - macro invocations (`println!`, `format!`, `assert!`): neither the macro nor any call inside
;     its token tree is visible to the grammar, so they produce no call edges;
;   - `panic!`, `?`, `.ok_or(E::X)`, `.map_err(..)` (no typed throw site the grammar exposes);
;   - nested use trees (`use a::{b::C, d::{E}}`): only one level of `{..}` is captured;
;   - inline `mod m { .. }` bodies are not definitions of their own (their items still are);
;   - type aliases, consts, statics, `macro_rules!`, closures, `extern` blocks.

; ---------------------------------------------------------------- definitions

(struct_item
  name: (type_identifier) @name
  body: (_) @body) @definition.struct

(struct_item
  name: (type_identifier) @name
  !body) @definition.struct

(union_item
  name: (type_identifier) @name
  body: (_) @body) @definition.struct

(enum_item
  name: (type_identifier) @name
  body: (_) @body) @definition.enum

(trait_item
  name: (type_identifier) @name
  body: (_) @body) @definition.trait

(function_item
  name: (identifier) @name
  body: (_) @body) @definition.function

(trait_item
  body: (declaration_list
    (function_signature_item
      name: (identifier) @name) @definition.method))

; ---------------------------------------------------------------- impl blocks

(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]) @scope.impl

; ---------------------------------------------------------------- calls

(call_expression
  function: (identifier) @name) @reference.call

(call_expression
  function: (scoped_identifier
    path: (_) @receiver
    name: (identifier) @name)) @reference.call

(call_expression
  function: (field_expression
    value: (_) @receiver
    field: (field_identifier) @name)) @reference.call

(call_expression
  function: (generic_function
    function: (identifier) @name)) @reference.call

(call_expression
  function: (generic_function
    function: (scoped_identifier
      path: (_) @receiver
      name: (identifier) @name))) @reference.call

(call_expression
  function: (generic_function
    function: (field_expression
      value: (_) @receiver
      field: (field_identifier) @name))) @reference.call

; ---------------------------------------------------------------- throws (Err(..) payloads)

; Err(E::Variant(..)) / Err(E::new(..)) / Err(E::Variant) with E a type (capitalised)
(call_expression
  function: (identifier) @_err
  arguments: (arguments .
    [
      (call_expression function: (scoped_identifier path: (identifier) @name))
      (scoped_identifier path: (identifier) @name)
      (call_expression function: (scoped_identifier path: (scoped_identifier name: (identifier) @name)))
      (scoped_identifier path: (scoped_identifier name: (identifier) @name))
    ])
  (#eq? @_err "Err")
  (#match? @name "^[A-Z]")) @reference.throw

; Err(fmt::Error) -- module path, then the type
(call_expression
  function: (identifier) @_err
  arguments: (arguments .
    (scoped_identifier
      path: (identifier) @_mod
      name: (identifier) @name))
  (#eq? @_err "Err")
  (#match? @_mod "^[a-z_]")
  (#match? @name "^[A-Z]")) @reference.throw

; Err(E { .. }) and Err(path::E { .. })
(call_expression
  function: (identifier) @_err
  arguments: (arguments .
    (struct_expression
      name: [
        (type_identifier) @name
        (scoped_type_identifier name: (type_identifier) @name)
      ]))
  (#eq? @_err "Err")) @reference.throw

; Err(Unit) -- a unit struct value
(call_expression
  function: (identifier) @_err
  arguments: (arguments . (identifier) @name .)
  (#eq? @_err "Err")
  (#match? @name "^[A-Z]")) @reference.throw

; ---------------------------------------------------------------- inheritance

(impl_item
  trait: [
    (type_identifier) @inherit.implements
    (scoped_type_identifier name: (type_identifier) @inherit.implements)
    (generic_type type: (type_identifier) @inherit.implements)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @inherit.implements))
  ]
  type: [
    (type_identifier) @source
    (generic_type type: (type_identifier) @source)
    (scoped_type_identifier name: (type_identifier) @source)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @source))
  ])

(trait_item
  bounds: (trait_bounds
    [
      (type_identifier) @inherit.extends
      (scoped_type_identifier name: (type_identifier) @inherit.extends)
      (generic_type type: (type_identifier) @inherit.extends)
    ]))

; ---------------------------------------------------------------- imports

; use a;  use a::b::C;
(use_declaration
  argument: (identifier) @import.module) @import

(use_declaration
  argument: (scoped_identifier
    path: (_) @import.module
    name: (identifier) @import.name)) @import

; use a::b::C as D;  use a as b;
(use_declaration
  argument: (use_as_clause
    path: (scoped_identifier
      path: (_) @import.module
      name: (identifier) @import.name)
    alias: (identifier) @import.alias)) @import

(use_declaration
  argument: (use_as_clause
    path: (identifier) @import.module
    alias: (identifier) @import.alias)) @import

; use a::b::{C, D as E, self};
(use_declaration
  argument: (scoped_use_list
    path: (_) @import.module
    list: (use_list (identifier) @import.name))) @import

(use_declaration
  argument: (scoped_use_list
    path: (_) @import.module
    list: (use_list
      (use_as_clause
        path: (identifier) @import.name
        alias: (identifier) @import.alias)))) @import

(use_declaration
  argument: (scoped_use_list
    path: (_) @import.module
    list: (use_list (self)))) @import

; use a::b::*;
(use_declaration
  argument: (use_wildcard
    (_) @import.module) @import.wildcard) @import

; mod x;  (a module declared in its own file)
(mod_item
  name: (identifier) @import.module
  !body) @import

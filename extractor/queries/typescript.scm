; TypeScript (.ts .mts .cts) and TSX (.tsx) — Tree-sitter queries for the nanodex extractor.
; The same file is compiled against both grammars (language_typescript and language_tsx), so it
; uses only node types the two share: no JSX nodes (tsx only), no `<T>x` type assertions (ts only).
; Capture names follow extractor/queries/README.md.
;
; Covers:
;   definitions  classes and abstract classes; interfaces; enums; function and generator
;                declarations; class methods (incl. getters/setters, static, #private, `constructor`);
;                abstract method signatures and interface method signatures (methods without a
;                body); class fields whose value is an arrow/function expression (methods);
;                `const|let|var f = () => {}` / `= function () {}` as functions named by the variable.
;   calls        f(), f<T>(), obj.m(), this.m(), this.field.m(), ns.f() (receiver = object expression
;                text), constructor calls `new Foo()` / `new Foo<T>()` / `new ns.Foo()` as calls of Foo.
;   throws       `throw new X(...)` / `throw new ns.X(...)`.
;   inheritance  `class A extends B<T>` (extends), `implements I, J<T>, ns.K` (implements),
;                `interface A extends B, C<T>` (extends).
;   imports      `import D from 'm'` (default: @import.name is the local name), `import {a, b as c}`,
;                `import type {...}`, `import * as ns from 'm'` (module + alias), side-effect
;                `import 'm'`, `import x = require('m')`, `export ... from 'm'` re-exports (module only),
;                CommonJS `const x = require('m')` / `const {a, b: c} = require('m')`.
;
; Deliberately not covered:
;   type aliases (`type T = ...`: no node type for them), namespaces/`module` blocks (their
;   functions are kept, without the namespace in the qualname), overload signatures and `declare
;   function` (they would duplicate the implementation's id), property signatures, `super(...)`
;   calls, computed member calls (`obj[k]()`), dynamic `import('m')`, anonymous default exports,
;   class expressions, object-literal methods, callbacks (anonymous: their calls belong to the
;   enclosing definition), JSX elements as references (`<Foo />`; JSX nodes exist only in the tsx
;   grammar), decorators as calls, `throw err` of a variable.
; Spans: `export` and decorators are outside the declaration node in this grammar (a class
; decorator belongs to the export_statement, a method decorator is a sibling in the class body),
; so spans start at the `class` / `function` / method line; an arrow function's span is its
; `const`/`let`/`var` declaration.

; ---------------------------------------------------------------- definitions

(class_declaration
  name: (type_identifier) @name
  body: (class_body) @body) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name
  body: (class_body) @body) @definition.class

(interface_declaration
  name: (type_identifier) @name
  body: (interface_body) @body) @definition.interface

(enum_declaration
  name: (identifier) @name
  body: (enum_body) @body) @definition.enum

(abstract_method_signature
  name: [(property_identifier) (private_property_identifier)] @name) @definition.method

(method_signature
  name: [(property_identifier) (private_property_identifier)] @name) @definition.method

(public_field_definition
  name: [(property_identifier) (private_property_identifier)] @name
  value: [
    (arrow_function body: (_) @body)
    (function_expression body: (_) @body)
  ]) @definition.method

; include: ecmascript.scm

; ---------------------------------------------------------------- inheritance

(class_heritage
  (extends_clause
    value: [(identifier) (member_expression)] @inherit.extends))

(class_heritage
  (implements_clause
    [(type_identifier) (generic_type) (nested_type_identifier)] @inherit.implements))

(interface_declaration
  (extends_type_clause
    type: [(type_identifier) (generic_type) (nested_type_identifier)] @inherit.extends))

; ---------------------------------------------------------------- imports

; include: ecmascript_imports.scm

; import fs = require('m')
(import_statement
  (import_require_clause
    (identifier) @import.alias
    source: (string (string_fragment) @import.module))) @import

; ---------------------------------------------------------------- receiver types
; (extractor/receivers.py) annotated parameters, fields and variables, `x = new Foo()`;
; a constructor's parameter property (`constructor(private store: Store)`) types `this.store`.
(required_parameter
  (accessibility_modifier)
  pattern: (identifier) @bind.name
  type: (type_annotation (_) @bind.field_annotation)) @binding
(required_parameter
  pattern: (identifier) @bind.name
  type: (type_annotation (_) @bind.annotation)) @binding
(optional_parameter
  pattern: (identifier) @bind.name
  type: (type_annotation (_) @bind.annotation)) @binding
(public_field_definition
  name: (property_identifier) @bind.name
  type: (type_annotation (_) @bind.annotation)) @binding
(public_field_definition
  name: (property_identifier) @bind.name
  value: (new_expression constructor: [(identifier) (member_expression)] @bind.annotation)) @binding
(variable_declarator
  name: (identifier) @bind.name
  type: (type_annotation (_) @bind.annotation)) @binding
(variable_declarator
  name: (identifier) @bind.name
  value: (new_expression constructor: [(identifier) (member_expression)] @bind.annotation)) @binding
(assignment_expression
  left: (member_expression) @bind.name
  right: (new_expression constructor: [(identifier) (member_expression)] @bind.annotation)) @binding

; JavaScript (.js .jsx .mjs .cjs) — Tree-sitter queries for the nanodex extractor.
; Capture names follow extractor/queries/README.md.
;
; Covers:
;   definitions  class declarations; function and generator declarations; class methods
;                (incl. getters/setters, static, #private, the `constructor`); class fields whose
;                value is an arrow/function expression (`handle = () => {}`) as methods;
;                `const|let|var f = () => {}` / `= function () {}` as functions named by the variable.
;   calls        f(), obj.m(), this.m(), ns.f(), a.b.m() (receiver = object expression text),
;                constructor calls `new Foo()` / `new ns.Foo()` as calls of Foo.
;   throws       `throw new X(...)` / `throw new ns.X(...)` (the name X).
;   inheritance  `class A extends B` / `extends ns.B` (extends).
;   imports      `import D from 'm'` (default: @import.name is the local name), `import {a, b as c}`,
;                `import * as ns from 'm'` (module + alias), side-effect `import 'm'`,
;                `export ... from 'm'` re-exports (module only, for depends_on),
;                CommonJS `const x = require('m')` (module + alias), `const {a, b: c} = require('m')`,
;                and a bare `require('m')`.
;
; Deliberately not covered:
;   `super(...)` / `super.m()` dispatch (super() is not a named callee), calls through computed
;   members (`obj[k]()`), dynamic `import('m')`, anonymous default exports
;   (`export default function () {}`), class expressions (`const A = class {}`), functions assigned
;   to properties (`obj.m = function () {}` / `module.exports.f = ...`), object-literal methods,
;   IIFEs and callbacks (anonymous: their calls belong to the enclosing definition), JSX elements
;   as references, `throw err` of a variable (no type name), prototype-based inheritance.
; Spans: `export` is outside the declaration node in this grammar, so spans start at `class` /
; `function` (the same line in practice); an arrow function's span is its `const`/`let`/`var`
; declaration.

; ---------------------------------------------------------------- definitions

(class_declaration
  name: (identifier) @name
  body: (class_body) @body) @definition.class

(field_definition
  property: [(property_identifier) (private_property_identifier)] @name
  value: [
    (arrow_function body: (_) @body)
    (function_expression body: (_) @body)
  ]) @definition.method

; include: ecmascript.scm

; ---------------------------------------------------------------- inheritance

(class_declaration
  (class_heritage
    [(identifier) (member_expression)] @inherit.extends))

; ---------------------------------------------------------------- imports

; include: ecmascript_imports.scm

; require('m') as a statement
(expression_statement
  (call_expression
    function: (identifier) @_require
    arguments: (arguments . (string (string_fragment) @import.module) .))
  (#eq? @_require "require")) @import

; ES module imports and CommonJS requires, shared by JavaScript and TypeScript/TSX: each of
; javascript.scm and typescript.scm includes this file (`; include: ecmascript_imports.scm`),
; then adds its own import forms.

; import D from 'm'
(import_statement
  (import_clause
    (identifier) @import.name)
  source: (string (string_fragment) @import.module)) @import

; import { a, b as c } from 'm'  /  import type { T } from 'm'
(import_statement
  (import_clause
    (named_imports
      (import_specifier
        name: (identifier) @import.name
        alias: (identifier)? @import.alias)))
  source: (string (string_fragment) @import.module)) @import

; import * as ns from 'm'
(import_statement
  (import_clause
    (namespace_import (identifier) @import.alias))
  source: (string (string_fragment) @import.module)) @import

; import 'm'  (side effects only)
(import_statement
  .
  source: (string (string_fragment) @import.module)) @import

; export * from 'm' / export { a } from 'm'
(export_statement
  source: (string (string_fragment) @import.module)) @import

; const m = require('m')
(variable_declarator
  name: (identifier) @import.alias
  value: (call_expression
    function: (identifier) @_require
    arguments: (arguments . (string (string_fragment) @import.module) .))
  (#eq? @_require "require")) @import

; const { a, b: c } = require('m')
(variable_declarator
  name: (object_pattern
    [
      (shorthand_property_identifier_pattern) @import.name
      (pair_pattern
        key: (property_identifier) @import.name
        value: (identifier) @import.alias)
    ])
  value: (call_expression
    function: (identifier) @_require
    arguments: (arguments . (string (string_fragment) @import.module) .))
  (#eq? @_require "require")) @import

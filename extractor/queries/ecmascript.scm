; JavaScript and TypeScript/TSX share these patterns: each of javascript.scm and
; typescript.scm includes this file in place (`; include: ecmascript.scm`, expanded by
; extractor/languages.py before compiling). What differs stays in each language's file: the
; grammars name class fields, abstract classes and signatures differently.

; function f() {}, function* g() {}, class methods (incl. getters/setters, static, #private).
(function_declaration
  name: (identifier) @name
  body: (statement_block) @body) @definition.function

(generator_function_declaration
  name: (identifier) @name
  body: (statement_block) @body) @definition.function

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name
  body: (statement_block) @body) @definition.method

; const f = () => {}: the declaration statement is the main node, so that the doc comment above
; it (or above its `export`) is found.
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [
      (arrow_function body: (_) @body)
      (function_expression body: (_) @body)
      (generator_function body: (_) @body)
    ])) @definition.function

(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [
      (arrow_function body: (_) @body)
      (function_expression body: (_) @body)
      (generator_function body: (_) @body)
    ])) @definition.function

; ---------------------------------------------------------------- calls

(call_expression
  function: (identifier) @name
  (#not-eq? @name "require")) @reference.call

(call_expression
  function: (member_expression
    object: (_) @receiver
    property: [(property_identifier) (private_property_identifier)] @name)) @reference.call

(new_expression
  constructor: (identifier) @name) @reference.call

(new_expression
  constructor: (member_expression
    object: (_) @receiver
    property: (property_identifier) @name)) @reference.call

; ---------------------------------------------------------------- throws

(throw_statement
  (new_expression
    constructor: (identifier) @name)) @reference.throw

(throw_statement
  (new_expression
    constructor: (member_expression
      property: (property_identifier) @name))) @reference.throw

; Python: classes, functions/methods (decorated ones keep the `def` line as start, like `ast`),
; docstrings, calls (plain, attribute, self/cls), raise, base classes, every import form.
; Not covered: lambdas, comprehension scopes, dynamic imports (importlib), getattr calls.

(class_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?)  @body) @definition.class

(function_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?) @body) @definition.function

(class_definition
  superclasses: (argument_list [(identifier) (attribute)] @inherit.extends))
; A generic base `class C(Base[T])`: the subscripted class is the base.
(class_definition
  superclasses: (argument_list (subscript value: [(identifier) (attribute)] @inherit.extends)))

(call function: (identifier) @name) @reference.call
(call function: (attribute object: (_) @receiver attribute: (identifier) @name)) @reference.call

(raise_statement . [(identifier) (attribute)] @name) @reference.throw
(raise_statement . (call function: [(identifier) (attribute)] @name)) @reference.throw

(import_statement name: (dotted_name) @import.module) @import
(import_statement name: (aliased_import name: (dotted_name) @import.module alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module name: (dotted_name) @import.name) @import
(import_from_statement module_name: (_) @import.module name: (aliased_import name: (dotted_name) @import.name alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module (wildcard_import) @import.wildcard) @import

; Receiver types (see extractor/pytypes.py): annotated parameters and assignments, assignments
; from a call (`x = Item(...)`, `x = self.make()`) or from a name (`self.x = x`), for loops.
(typed_parameter . (identifier) @bind.name type: (type) @bind.annotation) @binding
(typed_default_parameter name: (identifier) @bind.name type: (type) @bind.annotation) @binding
(assignment left: [(identifier) (attribute)] @bind.name type: (type) @bind.annotation) @binding
(assignment left: [(identifier) (attribute)] @bind.name right: (call function: [(identifier) (attribute)] @bind.call)) @binding
(assignment left: (attribute) @bind.name right: (identifier) @bind.alias) @binding
(for_statement left: (identifier) @bind.name right: (call function: [(identifier) (attribute)] @bind.iter_call)) @binding
(for_statement left: (identifier) @bind.name right: [(identifier) (attribute)] @bind.iter) @binding

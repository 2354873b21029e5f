; Java — Tree-sitter queries for the nanodex extractor.
; Capture names follow extractor/queries/README.md.
;
; Covers:
;   definitions  classes, records (as classes), interfaces, annotation types (as interfaces),
;                enums; methods (incl. abstract and interface methods, which have no body) and
;                constructors (as methods named like their class: `Circle.Circle`; compact record
;                constructors too). Nested types nest their qualnames (Outer.Inner.method).
;   calls        m(), obj.m(), this.m(), super.m(), Type.staticM(), a.b.m() (receiver = object
;                expression text); constructor calls `new Foo(..)`, `new Foo<>(..)`, `new a.b.Foo(..)`
;                as calls of Foo.
;   throws       `throw new X(..)` and every type in a `throws X, Y` clause of a method or
;                constructor.
;   inheritance  `class A extends B<T>` (extends), `implements I, J<T>` on classes, enums and records
;                (implements), `interface A extends B, C` (extends).
;   imports      single-type `import a.b.C;` (module a.b, name C), static `import static a.b.C.m;`
;                (module a.b.C, name m), on-demand `import a.b.*;` and `import static a.b.C.*;`
;                (module + wildcard). Java has no import aliases.
;
; Deliberately not covered:
;   `this(..)` / `super(..)` constructor chaining (explicit_constructor_invocation has no callee
;   name), method references (`Foo::bar`), lambdas and anonymous classes as definitions (their
;   calls belong to the enclosing method), fields, enum constants, annotations as references,
;   `throw e` of a variable, the `package` declaration (the engine groups a folder's files).
; Spans: annotations and modifiers are inside the declaration node in this grammar, so a
; definition's span starts at its first annotation (`@Override`, `@Test`); the Javadoc comment
; above it is not part of the span.

; ---------------------------------------------------------------- definitions

(class_declaration
  name: (identifier) @name
  body: (class_body) @body) @definition.class

(record_declaration
  name: (identifier) @name
  body: (class_body) @body) @definition.class

(interface_declaration
  name: (identifier) @name
  body: (interface_body) @body) @definition.interface

(annotation_type_declaration
  name: (identifier) @name
  body: (annotation_type_body) @body) @definition.interface

(enum_declaration
  name: (identifier) @name
  body: (enum_body) @body) @definition.enum

(method_declaration
  name: (identifier) @name
  body: (block)? @body) @definition.method

(constructor_declaration
  name: (identifier) @name
  body: (constructor_body) @body) @definition.method

(compact_constructor_declaration
  name: (identifier) @name
  body: (block) @body) @definition.method

; ---------------------------------------------------------------- calls

(method_invocation
  object: (_)? @receiver
  name: (identifier) @name) @reference.call

(object_creation_expression
  type: [
    (type_identifier) @name
    (generic_type [(type_identifier) @name (scoped_type_identifier (type_identifier) @name .)])
    (scoped_type_identifier (type_identifier) @name .)
  ]) @reference.call

; ---------------------------------------------------------------- throws

(throw_statement
  (object_creation_expression
    type: [
      (type_identifier) @name
      (generic_type [(type_identifier) @name (scoped_type_identifier (type_identifier) @name .)])
      (scoped_type_identifier (type_identifier) @name .)
    ])) @reference.throw

(throws
  [
    (type_identifier) @name
    (scoped_type_identifier (type_identifier) @name .)
  ]) @reference.throw

; ---------------------------------------------------------------- inheritance

(class_declaration
  superclass: (superclass
    [(type_identifier) (generic_type) (scoped_type_identifier)] @inherit.extends))

(class_declaration
  interfaces: (super_interfaces
    (type_list [(type_identifier) (generic_type) (scoped_type_identifier)] @inherit.implements)))

(enum_declaration
  interfaces: (super_interfaces
    (type_list [(type_identifier) (generic_type) (scoped_type_identifier)] @inherit.implements)))

(record_declaration
  interfaces: (super_interfaces
    (type_list [(type_identifier) (generic_type) (scoped_type_identifier)] @inherit.implements)))

(interface_declaration
  (extends_interfaces
    (type_list [(type_identifier) (generic_type) (scoped_type_identifier)] @inherit.extends)))

; ---------------------------------------------------------------- imports

; import a.b.C;  /  import static a.b.C.m;
(import_declaration
  (scoped_identifier
    scope: (_) @import.module
    name: (identifier) @import.name)
  .) @import

; import a.b.*;  /  import static a.b.C.*;
(import_declaration
  [(scoped_identifier) (identifier)] @import.module
  (asterisk) @import.wildcard) @import

; ---------------------------------------------------------------- receiver types
; (extractor/receivers.py) declared types of parameters, locals, fields and for-each variables;
; `var x = new Foo()` takes the constructed type.
(formal_parameter type: (_) @bind.annotation name: (identifier) @bind.name) @binding
(local_variable_declaration
  type: (_) @bind.annotation
  declarator: (variable_declarator name: (identifier) @bind.name)) @binding
(local_variable_declaration
  declarator: (variable_declarator
    name: (identifier) @bind.name
    value: (object_creation_expression type: (_) @bind.annotation))) @binding
(field_declaration
  type: (_) @bind.annotation
  declarator: (variable_declarator name: (identifier) @bind.name)) @binding
(enhanced_for_statement type: (_) @bind.annotation name: (identifier) @bind.name) @binding

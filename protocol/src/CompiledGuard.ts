/**
 * Compiles a schema's encoded side into a plain predicate, for the hottest boundary of the engine:
 * every heartbeat frame. Effect's Schema interpreter costs 15-40 µs per heartbeat on this machine
 * (JSON.parse costs ~5 µs); the compiled predicate costs about 1 µs and calls the schema's own
 * refinement filters, so the schema stays the single source of truth.
 *
 * The compiler accepts only the AST shapes it can check exactly (object literals, literals,
 * string/number/boolean keywords, unions, refinements, and Class wrappers whose encoded side is an
 * object literal). For anything else it returns undefined and the caller keeps the interpreter.
 * A `true` answer means the full decode would succeed and produce the same fields; on `false` the
 * caller runs the interpreter to get its exact error message (bad input is the rare path).
 */
import { Option, ParseResult, type Schema, type SchemaAST } from "effect"

type Guard = (input: unknown) => boolean

const parseOptions: SchemaAST.ParseOptions = { errors: "first" }

const compileAst = (ast: SchemaAST.AST): Guard | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (input) => typeof input === "string"
    case "NumberKeyword":
      return (input) => typeof input === "number"
    case "BooleanKeyword":
      return (input) => typeof input === "boolean"
    case "UndefinedKeyword":
      return (input) => input === undefined
    case "UnknownKeyword":
      return () => true
    case "Literal": {
      const literal = ast.literal
      return (input) => input === literal
    }
    case "Union": {
      const members = ast.types.map(compileAst)
      if (members.some((member) => member === undefined)) return undefined
      const guards = members as Array<Guard>
      return (input) => {
        for (const guard of guards) if (guard(input)) return true
        return false
      }
    }
    case "Refinement": {
      const from = compileAst(ast.from)
      if (from === undefined) return undefined
      const refinement = ast
      return (input) => from(input) && Option.isNone(refinement.filter(input, parseOptions, refinement))
    }
    case "Transformation": {
      // A Schema.Class: decoding only constructs the class from an already-valid object literal.
      if (ast.to._tag !== "Declaration" || ast.from._tag !== "TypeLiteral") return undefined
      return compileAst(ast.from)
    }
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) {
        // Only a plain record of string keys (e.g. a command result payload), nothing mixed.
        if (ast.propertySignatures.length > 0 || ast.indexSignatures.length > 1) return undefined
        const signature = ast.indexSignatures[0]!
        if (signature.parameter._tag !== "StringKeyword") return undefined
        const value = compileAst(signature.type)
        if (value === undefined) return undefined
        return (input) => {
          if (typeof input !== "object" || input === null || Array.isArray(input)) return false
          for (const key of Object.keys(input)) if (!value((input as Record<string, unknown>)[key])) return false
          return true
        }
      }
      const properties: Array<{ readonly name: PropertyKey; readonly optional: boolean; readonly guard: Guard }> = []
      for (const signature of ast.propertySignatures) {
        const guard = compileAst(signature.type)
        if (guard === undefined) return undefined
        properties.push({ name: signature.name, optional: signature.isOptional, guard })
      }
      return (input) => {
        if (typeof input !== "object" || input === null || Array.isArray(input)) return false
        const record = input as Record<PropertyKey, unknown>
        for (const property of properties) {
          if (!Object.hasOwn(record, property.name)) {
            if (property.optional) continue
            return false
          }
          if (!property.guard(record[property.name])) return false
        }
        return true
      }
    }
    default:
      return undefined
  }
}

/** The object-literal shape under a Class (or a plain Struct), for copying its known fields. */
const typeLiteralOf = (ast: SchemaAST.AST): SchemaAST.TypeLiteral | undefined => {
  if (ast._tag === "TypeLiteral") return ast.indexSignatures.length === 0 ? ast : undefined
  if (ast._tag === "Transformation") return typeLiteralOf(ast.from)
  return undefined
}

/**
 * A decoder for one object schema: returns the input's known fields as a fresh plain object
 * (excess properties dropped, as the interpreter drops them), or undefined when the input does not
 * match. Undefined as a whole when the schema has a shape the compiler does not support.
 */
export const compileObjectDecoder = <A>(schema: { readonly ast: SchemaAST.AST }): ((input: unknown) => A | undefined) | undefined => {
  const guard = compileAst(schema.ast)
  const shape = typeLiteralOf(schema.ast)
  if (guard === undefined || shape === undefined) return undefined
  const names = shape.propertySignatures.map((signature) => signature.name)
  return (input) => {
    if (!guard(input)) return undefined
    const record = input as Record<PropertyKey, unknown>
    const out: Record<PropertyKey, unknown> = {}
    for (const name of names) if (Object.hasOwn(record, name)) out[name] = record[name]
    return out as A
  }
}

/** Whether the compiler supports this schema (tests pin that the hot frames stay compiled). */
export const isCompilable = (schema: { readonly ast: SchemaAST.AST }): boolean => compileAst(schema.ast) !== undefined

/** Exposed for tests: whether the compiled guard agrees with the interpreter on `input`. */
export const agreesWithInterpreter = (schema: Schema.Schema<any, any, never>, input: unknown): boolean => {
  const guard = compileAst(schema.ast)
  if (guard === undefined) return true
  const interpreted = ParseResult.decodeUnknownEither(schema, parseOptions)(input)
  return guard(input) === (interpreted._tag === "Right")
}

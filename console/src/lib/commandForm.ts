/**
 * Forms generated from the protocol's command parameter schemas (`CommandParams`): each field's
 * kind, whether it is required, its limits and a hint are read from the Schema AST, and the
 * values are checked with the same schema before they are sent (the engine checks again).
 */
import { CommandParams, type CommandType } from "@nexmdm/protocol"
import { Either, ParseResult, Schema, SchemaAST } from "effect"

export type FieldKind = "text" | "integer" | "boolean" | "confirm"

export interface ParamField {
  readonly name: string
  readonly kind: FieldKind
  readonly required: boolean
  /** For `confirm`: the literal the user must type (e.g. "WIPE"). */
  readonly literal?: string
  /** Human hints from the refinements ("between 5 and 3600", "a package name"). */
  readonly hint?: string
  readonly secret: boolean
}

export const commandTypes = Object.keys(CommandParams) as Array<CommandType>

/** Commands that change or erase a device: the form asks to confirm. */
export const destructive: ReadonlySet<CommandType> = new Set(["wipe", "reboot", "reset_password", "clear_app_data"])

/** The limits the refinements declare (their JSON Schema annotations), merged. */
const limits = (ast: SchemaAST.AST): Record<string, unknown> => {
  const found: Record<string, unknown> = {}
  let node: SchemaAST.AST = ast
  while (SchemaAST.isRefinement(node)) {
    const annotation = SchemaAST.getJSONSchemaAnnotation(node)
    if (annotation._tag === "Some") for (const [key, value] of Object.entries(annotation.value)) found[key] ??= value
    node = node.from
  }
  return found
}

/** A short hint from the limits: "5 to 3600", "4 to 64 characters", "at most 200 characters". */
const hintOf = (ast: SchemaAST.AST, name: string): string | undefined => {
  const l = limits(ast)
  const min = typeof l["minimum"] === "number" ? l["minimum"] : undefined
  const max = typeof l["maximum"] === "number" ? l["maximum"] : undefined
  if (min !== undefined || max !== undefined) return min !== undefined && max !== undefined ? `${min} to ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`
  if (/packageName/i.test(name)) return "an Android package name, e.g. com.example.app"
  if (name === "sha256") return "64 lowercase hex characters"
  if (name === "url") return "http(s) URL of the APK"
  const minLength = typeof l["minLength"] === "number" && l["minLength"] > 0 ? l["minLength"] : undefined
  const maxLength = typeof l["maxLength"] === "number" ? l["maxLength"] : undefined
  if (minLength !== undefined && maxLength !== undefined) return `${minLength} to ${maxLength} characters`
  if (maxLength !== undefined) return `at most ${maxLength} characters`
  return undefined
}

const base = (ast: SchemaAST.AST): SchemaAST.AST => {
  let node = ast
  while (SchemaAST.isRefinement(node) || SchemaAST.isTransformation(node)) node = SchemaAST.isRefinement(node) ? node.from : node.to
  return node
}

const isInteger = (ast: SchemaAST.AST): boolean => {
  let node: SchemaAST.AST = ast
  while (SchemaAST.isRefinement(node)) {
    const id = SchemaAST.getSchemaIdAnnotation(node)
    if (id._tag === "Some" && String(id.value).includes("Int")) return true
    node = node.from
  }
  return false
}

/** The fields of a command type's parameters, in schema order. */
export const paramFields = (type: CommandType): Array<ParamField> => {
  const ast = base(CommandParams[type].ast)
  if (!SchemaAST.isTypeLiteral(ast)) return []
  const sensitive = type === "reset_password" ? ["password"] : []
  return ast.propertySignatures.map((property) => {
    const name = String(property.name)
    let typeAst = property.type
    // optional fields are `X | undefined`
    if (SchemaAST.isUnion(typeAst)) typeAst = typeAst.types.find((member) => !SchemaAST.isUndefinedKeyword(member)) ?? typeAst
    const core = base(typeAst)
    const kind: FieldKind = SchemaAST.isLiteral(core)
      ? "confirm"
      : SchemaAST.isBooleanKeyword(core)
        ? "boolean"
        : SchemaAST.isNumberKeyword(core)
          ? "integer"
          : "text"
    const hint = hintOf(typeAst, name) ?? ""
    return {
      name,
      kind: kind === "integer" && !isInteger(typeAst) ? "integer" : kind,
      required: !property.isOptional,
      ...(SchemaAST.isLiteral(core) ? { literal: String(core.literal) } : {}),
      ...(hint === "" ? {} : { hint }),
      secret: sensitive.includes(name)
    }
  })
}

export type FormValues = Record<string, string | boolean>

/** Form values -> params: empty optional fields are left out, integers parsed. */
export const toParams = (type: CommandType, values: FormValues): Record<string, unknown> => {
  const params: Record<string, unknown> = {}
  for (const field of paramFields(type)) {
    const value = values[field.name]
    if (field.kind === "boolean") {
      params[field.name] = value === true
      continue
    }
    const text = typeof value === "string" ? value.trim() : ""
    if (text === "" && !field.required) continue
    params[field.name] = field.kind === "integer" && /^-?\d+$/.test(text) ? Number(text) : text
  }
  return params
}

/** Checks params with the protocol's schema: field name -> first problem. */
export const validateParams = (type: CommandType, params: Record<string, unknown>): Record<string, string> => {
  const result = Schema.decodeUnknownEither(CommandParams[type] as Schema.Schema<unknown, unknown>, { onExcessProperty: "error" })(params)
  if (Either.isRight(result)) return {}
  const errors: Record<string, string> = {}
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(result.left)) {
    const key = issue.path.length > 0 ? String(issue.path[0]) : "_"
    errors[key] ??= issue.message
  }
  return errors
}

/** "set_heartbeat_interval" -> "Set heartbeat interval" */
export const humanize = (name: string) => {
  const spaced = name.replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()
  return spaced.charAt(0).toUpperCase() + spaced.slice(1)
}

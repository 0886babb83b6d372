/**
 * The admin REST API (/api/v1 on this origin) as plain fetch calls: the bearer token from the
 * session, one transparent refresh when the access token expired, and every failure as an
 * `ApiError` carrying the engine's stable `code` (clients branch on codes, people read messages).
 */
import { authorizedFetch } from "./session"

export interface FieldIssue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

/** A failed API call: HTTP status, the engine's machine-readable code, and field issues for 400s. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: ReadonlyArray<FieldIssue> = [],
    readonly retryAfterSeconds?: number
  ) {
    super(message)
  }

  /** The first issue's message for a field (e.g. "email"), for inline form errors. */
  fieldError(field: string): string | undefined {
    return this.issues.find((issue) => issue.path[0] === field)?.message
  }
}

/** Reads the engine's error bodies: `{_tag, code, message, issues?}` (API) or `{error: {code, message}}` (ops). */
export const toApiError = (status: number, body: unknown): ApiError => {
  const record = (typeof body === "object" && body !== null ? body : {}) as Record<string, any>
  const inner = typeof record["error"] === "object" && record["error"] !== null ? (record["error"] as Record<string, any>) : record
  const code = typeof inner["code"] === "string" ? inner["code"] : status === 0 ? "NETWORK" : `HTTP_${status}`
  const message = typeof inner["message"] === "string" ? inner["message"] : status === 0 ? "the engine did not answer" : `request failed (${status})`
  const issues = Array.isArray(inner["issues"]) ? (inner["issues"] as Array<FieldIssue>) : []
  const retryAfter = typeof inner["retryAfterSeconds"] === "number" ? inner["retryAfterSeconds"] : undefined
  return new ApiError(status, code, message, issues, retryAfter)
}

export type Query = Record<string, string | number | boolean | undefined | null>

export const withQuery = (path: string, query: Query = {}): string => {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null && value !== "") params.set(key, String(value))
  const text = params.toString()
  return text === "" ? path : `${path}?${text}`
}

const parse = async (response: Response): Promise<unknown> => {
  const text = await response.text()
  if (text === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** One API call; resolves with the decoded JSON body (undefined for 204), rejects with ApiError. */
export const request = async <A>(method: string, path: string, body?: unknown, options: { readonly anonymous?: boolean } = {}): Promise<A> => {
  const init: RequestInit = {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  }
  let response: Response
  try {
    response = options.anonymous === true ? await fetch(`/api/v1${path}`, init) : await authorizedFetch(`/api/v1${path}`, init)
  } catch (error) {
    if (error instanceof ApiError) throw error
    throw new ApiError(0, "NETWORK", "the engine did not answer: check that it is running")
  }
  const decoded = await parse(response)
  if (!response.ok) throw toApiError(response.status, decoded)
  return decoded as A
}

/** A text body (CSV exports). */
export const requestText = async (path: string): Promise<string> => {
  const response = await authorizedFetch(`/api/v1${path}`, { method: "GET" })
  if (!response.ok) throw toApiError(response.status, await parse(response))
  return response.text()
}

export const get = <A>(path: string, query?: Query) => request<A>("GET", withQuery(path, query))
export const post = <A>(path: string, body?: unknown) => request<A>("POST", path, body ?? {})
export const patch = <A>(path: string, body: unknown) => request<A>("PATCH", path, body)
export const put = <A>(path: string, body: unknown) => request<A>("PUT", path, body)
export const del = <A>(path: string) => request<A>("DELETE", path)

/** Saves text as a file in the browser (CSV and JSON exports). */
export const download = (filename: string, text: string, type = "text/csv") => {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const link = document.createElement("a")
  link.href = url
  link.download = filename
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** RFC 4180 CSV with spreadsheet formula injection neutralised. */
export const toCsv = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<unknown>>): string => {
  const cell = (value: unknown) => {
    let text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value)
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
  }
  return [header, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n"
}

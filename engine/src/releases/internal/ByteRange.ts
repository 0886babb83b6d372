/**
 * The one form of `Range` downloads need: a single `bytes=` range (resuming an interrupted download,
 * or `bytes=-N` for the tail). Several ranges in one request are answered with the whole file, as
 * RFC 9110 allows a server to ignore Range.
 */
export type RangeAnswer =
  | { readonly _tag: "Whole" }
  | { readonly _tag: "Partial"; readonly start: number; readonly end: number }
  | { readonly _tag: "Unsatisfiable" }

export const parseRange = (header: string | undefined, size: number): RangeAnswer => {
  if (header === undefined || header === "") return { _tag: "Whole" }
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null) return { _tag: "Whole" }
  const [, from = "", to = ""] = match
  if (from === "" && to === "") return { _tag: "Whole" }
  if (from === "") {
    const suffix = Number(to)
    if (suffix === 0) return { _tag: "Unsatisfiable" }
    return { _tag: "Partial", start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(from)
  if (start >= size) return { _tag: "Unsatisfiable" }
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1)
  if (end < start) return { _tag: "Whole" }
  return { _tag: "Partial", start, end }
}

/** `ETag` of a release: its SHA-256, as a strong validator. */
export const etagOf = (sha256Hex: string) => `"${sha256Hex}"`

/** Whether `If-None-Match` names this ETag (then the answer is 304). */
export const notModified = (ifNoneMatch: string | undefined, etag: string) =>
  ifNoneMatch !== undefined && ifNoneMatch.split(",").some((candidate) => candidate.trim() === etag || candidate.trim() === "*")

/**
 * Agent APK downloads on the device plane, where phones, the setup wizard (QR provisioning) and
 * enrollment scripts can reach them:
 *
 *   GET /v1/releases/:id/agent.apk[?client=device|script&device=<id>]
 *       -> 200 the file (Content-Length, ETag = "<sha256>", Accept-Ranges), 206 for one `Range`,
 *          304 for a matching If-None-Match, 416 for a range past the end, 404 for an unknown id.
 *
 * No credentials: an APK is not a secret (Android's provisioning downloader sends none), and its
 * integrity is checked by the downloader against the SHA-256 it was given separately. Every download
 * is recorded (client as the caller states it, bytes sent, completed or not). The file is streamed
 * with uWS backpressure (tryEnd / onWritable), never read whole. Registered by DevicePlane with one line.
 */
import { Effect, FiberSet } from "effect"
import { createReadStream } from "node:fs"
import type { HttpRequest, HttpResponse, TemplatedApp } from "../internal/Uws.js"
import { etagOf, notModified, parseRange } from "./internal/ByteRange.js"
import { type DownloadClient, type ReleaseFile, Releases } from "./Releases.js"

const DOWNLOAD_PATH = "/v1/releases/:id/agent.apk"
const releaseIdShape = /^rel_[0-9a-z]{20}$/
const deviceIdShape = /^[A-Za-z0-9_-]{1,64}$/

interface Download {
  readonly res: HttpResponse
  aborted: boolean
  answered: boolean
  onAbort: (() => void) | undefined
}

const statusLine: Record<number, string> = {
  200: "200 OK",
  206: "206 Partial Content",
  304: "304 Not Modified",
  404: "404 Not Found",
  416: "416 Range Not Satisfiable",
  500: "500 Internal Server Error"
}

/** A bodiless or small answer (errors as the device plane's `{"error":{code,message}}`). */
const answer = (download: Download, status: number, headers: Record<string, string>, body = "") => {
  if (download.aborted || download.answered) return
  download.answered = true
  download.res.cork(() => {
    download.res.writeStatus(statusLine[status] ?? String(status))
    for (const [name, value] of Object.entries(headers)) download.res.writeHeader(name, value)
    download.res.end(body)
  })
}

const answerError = (download: Download, status: number, code: string, message: string) =>
  answer(download, status, { "content-type": "application/json", "cache-control": "no-store" }, JSON.stringify({ error: { code, message } }))

/**
 * Streams bytes [start, end] of the file: each chunk goes out with tryEnd; when uWS buffers it
 * (backpressure) the file is paused until onWritable says the socket drained.
 */
const streamFile = (
  download: Download,
  path: string,
  start: number,
  end: number,
  head: { readonly status: number; readonly headers: Record<string, string> },
  onDone: (bytesSent: number, completed: boolean) => void
) => {
  const res = download.res
  const total = end - start + 1
  const file = createReadStream(path, { start, end, highWaterMark: 256 * 1024 })
  let handedOver = 0
  let finished = false
  const finish = (completed: boolean) => {
    if (finished) return
    finished = true
    file.destroy()
    onDone(completed ? total : handedOver, completed)
  }
  download.answered = true
  download.onAbort = () => finish(false)
  res.cork(() => {
    res.writeStatus(statusLine[head.status] ?? String(head.status))
    for (const [name, value] of Object.entries(head.headers)) res.writeHeader(name, value)
  })
  file.on("data", (data) => {
    if (download.aborted) return finish(false)
    const chunk = data as Buffer
    const bytes = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer
    const offsetBefore = res.getWriteOffset()
    let result: [boolean, boolean] = [false, false]
    res.cork(() => {
      result = res.tryEnd(bytes, total)
    })
    handedOver += chunk.byteLength
    const [ok, done] = result
    if (done) return finish(true)
    if (!ok) {
      file.pause()
      res.onWritable((offset) => {
        const [retryOk, retryDone] = res.tryEnd(bytes.slice(offset - offsetBefore), total)
        if (retryDone) finish(true)
        else if (retryOk) file.resume()
        return retryOk
      })
    }
  })
  file.on("end", () => {
    // The file was shorter than its record says: the response can never complete.
    if (!finished && handedOver < total) {
      if (!download.aborted) res.close()
      finish(false)
    }
  })
  file.on("error", () => {
    if (!download.aborted) res.close()
    finish(false)
  })
}

export const register = (app: TemplatedApp, clientIp: (res: HttpResponse, req: HttpRequest) => string) =>
  Effect.gen(function* () {
    const releases = yield* Releases
    const run = yield* FiberSet.makeRuntime<never>()

    const serve = (
      download: Download,
      file: ReleaseFile,
      request: { readonly range: string; readonly ifRange: string; readonly ifNoneMatch: string; readonly client: DownloadClient; readonly deviceId: string | null; readonly ip: string }
    ) => {
      const info = file.info
      const etag = etagOf(info.sha256Hex)
      const common = {
        etag,
        "accept-ranges": "bytes",
        "cache-control": "no-cache",
        "content-type": "application/vnd.android.package-archive",
        "content-disposition": `attachment; filename="${info.packageName}-${info.versionCode}.apk"`
      }
      if (notModified(request.ifNoneMatch === "" ? undefined : request.ifNoneMatch, etag)) return answer(download, 304, common)
      const range =
        request.ifRange !== "" && request.ifRange !== etag ? { _tag: "Whole" as const } : parseRange(request.range === "" ? undefined : request.range, info.sizeBytes)
      if (range._tag === "Unsatisfiable") {
        return answer(download, 416, { ...common, "content-range": `bytes */${info.sizeBytes}` })
      }
      const start = range._tag === "Partial" ? range.start : 0
      const end = range._tag === "Partial" ? range.end : info.sizeBytes - 1
      run(
        Effect.flatMap(
          releases.recordDownloadStart({
            releaseId: info.id,
            clientKind: request.client,
            deviceId: request.deviceId,
            sourceIp: request.ip,
            rangeStart: range._tag === "Partial" ? start : null
          }),
          (downloadId) =>
            Effect.sync(() => {
              if (download.aborted) return void run(releases.recordDownloadEnd(downloadId, 0, false))
              streamFile(
                download,
                file.filePath,
                start,
                end,
                {
                  status: range._tag === "Partial" ? 206 : 200,
                  headers: range._tag === "Partial" ? { ...common, "content-range": `bytes ${start}-${end}/${info.sizeBytes}` } : common
                },
                (bytesSent, completed) => void run(releases.recordDownloadEnd(downloadId, bytesSent, completed && end === info.sizeBytes - 1))
              )
            })
        )
      )
    }

    app.get(DOWNLOAD_PATH, (res, req) => {
      const download: Download = { res, aborted: false, answered: false, onAbort: undefined }
      res.onAborted(() => {
        download.aborted = true
        download.onAbort?.()
      })
      // uWS request objects die when this callback returns: read everything now.
      const releaseId = req.getParameter(0) ?? ""
      const clientParam = req.getQuery("client") ?? ""
      const deviceParam = req.getQuery("device") ?? ""
      const request = {
        range: req.getHeader("range"),
        ifRange: req.getHeader("if-range"),
        ifNoneMatch: req.getHeader("if-none-match"),
        client: (clientParam === "device" || clientParam === "script" ? clientParam : "anonymous") as DownloadClient,
        deviceId: deviceIdShape.test(deviceParam) ? deviceParam : null,
        ip: clientIp(res, req)
      }
      if (!releaseIdShape.test(releaseId)) return answerError(download, 404, "NOT_FOUND", "no such release")
      run(
        releases.open(releaseId).pipe(
          Effect.matchCauseEffect({
            onSuccess: (file) => Effect.sync(() => serve(download, file, request)),
            onFailure: (cause) =>
              cause._tag === "Fail"
                ? Effect.sync(() => answerError(download, 404, "NOT_FOUND", "no such release"))
                : Effect.zipRight(
                    Effect.logError("release download failed", cause).pipe(Effect.annotateLogs({ module: "ReleaseRoutes" })),
                    Effect.sync(() => answerError(download, 500, "INTERNAL", "internal error"))
                  )
          })
        )
      )
    })
  })

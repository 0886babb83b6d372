/**
 * A real SMTP server (smtp-server) on 127.0.0.1 and an ephemeral port, collecting every message
 * it accepts. Tests can make it refuse the next recipients with a given reply code (451 = try
 * later, 550 = never) and read back the sender, recipients, authenticated user, subject and body.
 */
import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"

export interface ReceivedMail {
  readonly from: string
  readonly to: ReadonlyArray<string>
  /** The user the client logged in as, if it did. */
  readonly user: string | undefined
  readonly subject: string
  readonly text: string
  readonly raw: string
}

/** Header fields, unfolded, lower-cased names. */
const headersOf = (head: string): Map<string, string> => {
  const headers = new Map<string, string>()
  for (const line of head.replace(/\r\n[ \t]+/g, " ").split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return headers
}

const decodeQuotedPrintable = (body: string): string => {
  const bytes: Array<number> = []
  const text = body.replace(/=\r\n/g, "")
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "=" && /^[0-9A-F]{2}$/i.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(text[i]!, "utf8"))
    }
  }
  return Buffer.from(bytes).toString("utf8")
}

/** Decodes RFC 2047 encoded words (=?UTF-8?Q?...?= / =?UTF-8?B?...?=) in a header. */
const decodeHeader = (value: string): string =>
  value
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_all, _charset: string, encoding: string, text: string) =>
      encoding.toUpperCase() === "B"
        ? Buffer.from(text, "base64").toString("utf8")
        : decodeQuotedPrintable(text.replace(/_/g, " "))
    )

export const parseMail = (raw: string): { subject: string; text: string } => {
  const split = raw.indexOf("\r\n\r\n")
  const headers = headersOf(raw.slice(0, split))
  const body = raw.slice(split + 4)
  const encoding = headers.get("content-transfer-encoding")?.toLowerCase()
  const text = encoding === "quoted-printable"
    ? decodeQuotedPrintable(body)
    : encoding === "base64"
      ? Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8")
      : body
  return { subject: decodeHeader(headers.get("subject") ?? ""), text: text.replace(/\r\n/g, "\n").replace(/\n$/, "") }
}

export class SmtpTestServer {
  readonly received: Array<ReceivedMail> = []
  /** Reply codes for the next RCPT commands (one consumed per recipient). */
  readonly refuseNext: Array<number> = []
  /** RCPT commands seen, accepted or not. */
  recipientAttempts = 0

  private constructor(private readonly server: SMTPServer, readonly port: number) {}

  static start(options: { readonly user?: string; readonly pass?: string } = {}): Promise<SmtpTestServer> {
    let self: SmtpTestServer
    const server = new SMTPServer({
      authOptional: true,
      allowInsecureAuth: true,
      disabledCommands: ["STARTTLS"],
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === options.user && auth.password === options.pass) callback(null, { user: auth.username })
        else callback(new Error("invalid credentials"))
      },
      onRcptTo(_address, _session, callback) {
        self.recipientAttempts++
        const code = self.refuseNext.shift()
        if (code === undefined) return callback()
        callback(Object.assign(new Error(code < 500 ? "mailbox busy, try later" : "no such mailbox"), { responseCode: code }))
      },
      onData(stream, session, callback) {
        const chunks: Array<Buffer> = []
        stream.on("data", (chunk: Buffer) => chunks.push(chunk))
        stream.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8")
          const from = session.envelope.mailFrom
          self.received.push({
            from: from === false ? "" : from.address,
            to: session.envelope.rcptTo.map((address) => address.address),
            user: session.user,
            ...parseMail(raw),
            raw
          })
          callback()
        })
      }
    })
    return new Promise((resolve, reject) => {
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        self = new SmtpTestServer(server, (server.server.address() as AddressInfo).port)
        resolve(self)
      })
    })
  }

  /** smtp://[user:pass@]127.0.0.1:port */
  url(credentials?: { readonly user: string; readonly pass: string }): string {
    const auth = credentials === undefined ? "" : `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.pass)}@`
    return `smtp://${auth}127.0.0.1:${this.port}`
  }

  /** Waits until at least `count` mails arrived. */
  async waitForMails(count: number, timeoutMs = 5000): Promise<ReadonlyArray<ReceivedMail>> {
    const deadline = Date.now() + timeoutMs
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} mails, got ${this.received.length}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return this.received
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** A port on 127.0.0.1 where nothing listens (taken from a server that was just closed). */
export const closedPort = async (): Promise<number> => {
  const server = await SmtpTestServer.start()
  await server.close()
  return server.port
}

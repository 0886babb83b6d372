/**
 * uWebSockets.js, checked: the package silently falls back to a slow JavaScript shim when its
 * native binary does not match the Node ABI (and that shim crashes on custom upgrade handlers),
 * so start-up fails loudly unless the native binding is the one that loaded.
 */
import { createRequire } from "node:module"
import type * as UwsTypes from "uWebSockets.js"

const require = createRequire(import.meta.url)

export const uws: typeof UwsTypes = require("uWebSockets.js")

export const nativeBindingLoaded = (): boolean =>
  Object.keys(require.cache).some((path) => /[\\/]binaries[\\/]uws_[^\\/]+\.node$/.test(path))

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from "uWebSockets.js"

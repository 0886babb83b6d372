export * from "./DeviceFrames.js"
export * from "./Commands.js"
export * from "./Frames.js"
export * from "./Http.js"
export * from "./Codec.js"
// Signing (node:crypto) is a separate entry, "@nexmdm/protocol/signing", so browsers never load it.
export { isCompilable, agreesWithInterpreter } from "./CompiledGuard.js"

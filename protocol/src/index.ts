export * from "./DeviceFrames.js"
export * from "./Http.js"
export * from "./Codec.js"

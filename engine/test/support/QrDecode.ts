/** Reads QR codes back in tests: jsQR over a PNG's pixels (pngjs). */
import jsQRModule from "jsqr"
import { PNG } from "pngjs"

// jsqr is CommonJS with `exports.default`: Node's ESM loader and vitest disagree on the default import.
type Decoder = typeof jsQRModule.default
const jsQR: Decoder = (jsQRModule as unknown as { default?: Decoder }).default ?? (jsQRModule as unknown as Decoder)

/** The text in a PNG QR code, read as bytes and decoded as UTF-8. */
export const decodePng = (png: Uint8Array): string => {
  const image = PNG.sync.read(Buffer.from(png))
  const code = jsQR(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length), image.width, image.height)
  if (code === null) throw new Error("no QR code found in the PNG")
  return Buffer.from(code.binaryData).toString("utf8")
}

/**
 * Reads the few attributes NexMDM needs from an APK's AndroidManifest.xml, which aapt compiles to
 * Android binary XML (AXML): a RES_XML chunk holding a string pool, a resource-id map for attribute
 * names, and start/end element chunks whose attributes carry typed values. Only the root <manifest>
 * element is read. Returns a message instead of throwing when the bytes do not parse.
 */

const RES_XML_TYPE = 0x0003
const RES_STRING_POOL_TYPE = 0x0001
const RES_XML_RESOURCE_MAP_TYPE = 0x0180
const RES_XML_START_ELEMENT_TYPE = 0x0102
const UTF8_FLAG = 0x100
const NO_INDEX = 0xffffffff

const TYPE_STRING = 0x03
const TYPE_INT_DEC = 0x10
const TYPE_INT_HEX = 0x11

/** android:versionCode and android:versionName (framework attribute resource ids). */
const VERSION_CODE_ATTR = 0x0101021b
const VERSION_NAME_ATTR = 0x0101021c

export interface ManifestFacts {
  readonly packageName: string
  readonly versionCode: number
  readonly versionName: string
}

class Malformed extends Error {}

const stringPool = (bytes: Buffer, start: number, headerSize: number): Array<string> => {
  const count = bytes.readUInt32LE(start + 8)
  const flags = bytes.readUInt32LE(start + 16)
  const stringsStart = start + bytes.readUInt32LE(start + 20)
  const utf8 = (flags & UTF8_FLAG) !== 0
  const strings: Array<string> = []
  for (let index = 0; index < count; index++) {
    let at = stringsStart + bytes.readUInt32LE(start + headerSize + index * 4)
    if (utf8) {
      // UTF-16 length (ignored), then the UTF-8 byte length; each 1 or 2 bytes (high bit = 2 bytes).
      at += (bytes[at]! & 0x80) !== 0 ? 2 : 1
      let length = bytes[at]!
      if ((length & 0x80) !== 0) {
        length = ((length & 0x7f) << 8) | bytes[at + 1]!
        at += 2
      } else at += 1
      strings.push(bytes.toString("utf8", at, at + length))
    } else {
      let length = bytes.readUInt16LE(at)
      if ((length & 0x8000) !== 0) {
        length = ((length & 0x7fff) << 16) | bytes.readUInt16LE(at + 2)
        at += 4
      } else at += 2
      if (at + length * 2 > bytes.length) throw new Malformed("string pool entry past the end")
      strings.push(bytes.toString("utf16le", at, at + length * 2))
    }
  }
  return strings
}

export const parseManifest = (bytes: Buffer): ManifestFacts | string => {
  try {
    if (bytes.length < 8 || bytes.readUInt16LE(0) !== RES_XML_TYPE) return "AndroidManifest.xml is not binary XML"
    let strings: Array<string> = []
    let resourceIds: Array<number> = []
    let offset = bytes.readUInt16LE(2)
    const end = Math.min(bytes.length, bytes.readUInt32LE(4))
    while (offset + 8 <= end) {
      const type = bytes.readUInt16LE(offset)
      const headerSize = bytes.readUInt16LE(offset + 2)
      const size = bytes.readUInt32LE(offset + 4)
      if (size < 8 || offset + size > end) return "binary XML chunk out of bounds"
      if (type === RES_STRING_POOL_TYPE) strings = stringPool(bytes, offset, headerSize)
      else if (type === RES_XML_RESOURCE_MAP_TYPE) {
        resourceIds = []
        for (let at = offset + headerSize; at + 4 <= offset + size; at += 4) resourceIds.push(bytes.readUInt32LE(at))
      } else if (type === RES_XML_START_ELEMENT_TYPE) {
        const ext = offset + headerSize
        const name = strings[bytes.readUInt32LE(ext + 4)]
        if (name !== "manifest") return `root element is <${name ?? "?"}>, not <manifest>`
        const attributeStart = bytes.readUInt16LE(ext + 8)
        const attributeSize = bytes.readUInt16LE(ext + 10)
        const attributeCount = bytes.readUInt16LE(ext + 12)
        const values = new Map<string, string | number>()
        for (let index = 0; index < attributeCount; index++) {
          const at = ext + attributeStart + index * attributeSize
          if (at + 20 > offset + size) return "attribute past the end of its element"
          const nameIndex = bytes.readUInt32LE(at + 4)
          const rawValue = bytes.readUInt32LE(at + 8)
          const dataType = bytes[at + 15]!
          const data = bytes.readUInt32LE(at + 16)
          const resourceId = resourceIds[nameIndex]
          const key =
            resourceId === VERSION_CODE_ATTR ? "versionCode" : resourceId === VERSION_NAME_ATTR ? "versionName" : (strings[nameIndex] ?? "")
          const value =
            dataType === TYPE_STRING
              ? strings[data]
              : dataType === TYPE_INT_DEC || dataType === TYPE_INT_HEX
                ? data
                : rawValue !== NO_INDEX
                  ? strings[rawValue]
                  : undefined
          if (value !== undefined) values.set(key, value)
        }
        const packageName = values.get("package")
        const versionCode = values.get("versionCode")
        const versionName = values.get("versionName")
        if (typeof packageName !== "string" || !/^[A-Za-z][\w]*(\.[A-Za-z][\w]*)+$/.test(packageName)) {
          return "manifest has no valid package name"
        }
        if (typeof versionCode !== "number" || versionCode <= 0) return "manifest has no positive integer versionCode"
        return { packageName, versionCode, versionName: typeof versionName === "string" ? versionName : String(versionCode) }
      }
      offset += size
    }
    return "binary XML without a <manifest> element"
  } catch (error) {
    return error instanceof Malformed ? error.message : "AndroidManifest.xml does not parse"
  }
}

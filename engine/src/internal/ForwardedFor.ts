/**
 * The client address from a trusted proxy's forwarding header (NEXMDM_TRUSTED_PROXY_HEADER).
 * The proxy appends the address it saw: the LAST entry is the one it vouches for, anything before
 * it came from the client and may be forged. Both planes use this, so rate limits and audit agree.
 */
export const lastForwardedAddress = (value: string | undefined): string | undefined => {
  if (value === undefined) return undefined
  const last = value.slice(value.lastIndexOf(",") + 1).trim()
  return last === "" ? undefined : last
}

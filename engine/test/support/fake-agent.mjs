// The agent's side of the ENROLL hand-off, for fake-adb: after a short delay (an agent starting up),
// enrols with the server URL, token and serial it was handed, as AGENT-CONTRACT.md describes.
const [serverUrl, token, serial] = process.argv.slice(2)
await new Promise((resolve) => setTimeout(resolve, 300))
const response = await fetch(`${serverUrl}/v1/enroll`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ token, hardwareId: `hw-${serial}`, serial, model: "Fake", manufacturer: "NexMDM", osVersion: "14", agentVersion: "1.4.0" })
})
console.log(`enroll ${serial}: ${response.status} ${await response.text()}`)

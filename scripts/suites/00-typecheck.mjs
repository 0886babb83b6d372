import { run } from "../lib/run.mjs"

export default async () => {
  console.log("== typecheck")
  const failed = run("npm", ["run", "--silent", "typecheck"]) !== 0
  return { name: "typecheck", passed: failed ? 0 : 1, failed: failed ? 1 : 0, skipped: 0 }
}

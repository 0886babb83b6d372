// Helpers shared by the test suites in scripts/suites.
import { spawnSync } from "node:child_process"

/** Runs a command with inherited stdio and returns its exit status (1 when it could not start). */
export const run = (command, args, options = {}) =>
  spawnSync(command, args, { stdio: "inherit", env: process.env, ...options }).status ?? 1

// A real `workshop-hub serve` for the JS tier: its own temp data dir, the passphrase by
// environment (headless unlock), a signed-in session, and an app key for the SDKs. Its
// managed connections run in demo mode, so every call is answered by the built-in emulator.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const PASSPHRASE = "correct horse battery staple";
const ROOT = resolve(import.meta.dirname, "..", "..");

function binary() {
  return process.env.WORKSHOP_HUB_BIN ?? join(ROOT, "target", "debug", "workshop-hub");
}

function cleanEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WORKSHOP_HUB_")));
  return { ...env, WORKSHOP_HUB_PASSPHRASE: PASSPHRASE };
}

export async function startHub() {
  const tmp = mkdtempSync(join(tmpdir(), "whub-js-"));
  const proc = spawn(binary(), ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(tmp, "data")], {
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stderr.resume();
  const base = await new Promise((done, fail) => {
    const lines = createInterface({ input: proc.stdout });
    lines.once("line", (line) => {
      const m = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      m ? done(m[1]) : fail(new Error(`hub did not start: ${line}`));
    });
    proc.once("exit", (code) => fail(new Error(`hub exited with ${code}`)));
  });
  const session = await fetch(`${base}/api/v1/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ passphrase: PASSPHRASE }),
  });
  if (!session.ok) throw new Error(`sign-in failed: ${session.status}`);
  const cookie = session.headers.get("set-cookie").split(";")[0];
  const app = await fetch(`${base}/api/v1/apps`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie },
    body: JSON.stringify({ name: "js" }),
  });
  if (app.status !== 201) throw new Error(`app creation failed: ${app.status}`);
  const { key } = await app.json();
  return {
    base,
    key,
    close() {
      proc.kill("SIGKILL");
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

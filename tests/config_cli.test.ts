import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function train(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test(
  "deno task train with an unknown key exits 1 with one clear line",
  async () => {
    const { code, stdout, stderr } = await train("--bogus_key", "1");
    assert.equal(code, 1);
    assert.equal(stdout, "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], /^error: unknown config key "bogus_key"/);
    assert.doesNotMatch(stderr, /\bat .*:\d+:\d+|stack|Uncaught/i);
  },
);

Deno.test(
  "deno task train with an unknown model names the models",
  async () => {
    const { code, stdout, stderr } = await train("-m", "VBPR", "-d", "baby");
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      'error: unknown model "VBPR"; choose one of: BPR, LightGCN, MSCA; ' +
        'did you mean "BPR"?\n',
    );
  },
);

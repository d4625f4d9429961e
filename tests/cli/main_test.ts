import assert from "node:assert/strict";
import { COMMANDS, help, main } from "../../lib/cli/main.ts";

Deno.test("every command's module exists and documents itself", async () => {
  for (const [name, command] of Object.entries(COMMANDS)) {
    const text = await help(command);
    assert.ok(text.length > 40, `${name}: its module needs a doc comment (got ${JSON.stringify(text)})`);
  }
});

Deno.test("unknown command and no command exit 2; --help exits 0", async () => {
  assert.equal(await main(["no-such-command"]), 2);
  assert.equal(await main([]), 2);
  assert.equal(await main(["tokenize", "--help"]), 0);
});

Deno.test("an unknown flag is a usage error (exit 2)", async () => {
  assert.equal(await main(["tokenize", "--no-such-flag"]), 2);
});

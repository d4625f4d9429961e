import assert from "node:assert/strict";
import { join } from "node:path";
import { crc32, extractZip, listZip, readZipEntry } from "../../lib/glue/zip.ts";
import { tempDir } from "../env.ts";
import { makeZip } from "./zip_writer.ts";

Deno.test("crc32 matches the standard check value and continues across pieces", () => {
  const data = new TextEncoder().encode("123456789");
  assert.equal(crc32(data), 0xcbf43926);
  assert.equal(crc32(data.subarray(4), crc32(data.subarray(0, 4))), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
});

Deno.test("extractZip: stored and deflated entries, directories, __MACOSX skipped", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    // Big enough to span several 64 KiB read chunks, compressed and not.
    const big = "ab\tcd\n".repeat(40_000);
    const zip = await makeZip([
      { name: "RTE/" },
      { name: "RTE/train.tsv", data: big, deflate: true },
      { name: "RTE/dev.tsv", data: "stored \u00e9 text\n" },
      { name: "RTE/empty.txt", data: "", deflate: true },
      { name: "__MACOSX/RTE/._dev.tsv", data: "junk" },
    ]);
    await Deno.writeFile(join(dir, "a.zip"), zip);
    const file = await Deno.open(join(dir, "a.zip"));
    const entries = await listZip(file, "a.zip");
    file.close();
    assert.deepEqual(entries.map((e) => [e.name, e.method]), [
      ["RTE/", 0],
      ["RTE/train.tsv", 8],
      ["RTE/dev.tsv", 0],
      ["RTE/empty.txt", 8],
      ["__MACOSX/RTE/._dev.tsv", 0],
    ]);
    assert.ok(entries[1].compressedSize < entries[1].size / 10, "deflate actually compressed");
    const written = await extractZip(join(dir, "a.zip"), join(dir, "out"));
    assert.deepEqual(written, ["RTE/train.tsv", "RTE/dev.tsv", "RTE/empty.txt"]);
    assert.equal(await Deno.readTextFile(join(dir, "out/RTE/train.tsv")), big);
    assert.equal(await Deno.readTextFile(join(dir, "out/RTE/dev.tsv")), "stored \u00e9 text\n");
    assert.equal(await Deno.readTextFile(join(dir, "out/RTE/empty.txt")), "");
    await assert.rejects(Deno.stat(join(dir, "out/__MACOSX")), Deno.errors.NotFound);
  } finally {
    await cleanup();
  }
});

Deno.test("extractZip finds the end record behind a zip comment", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const zip = await makeZip([{ name: "x.txt", data: "hello", deflate: true }]);
    const comment = new TextEncoder().encode("a comment");
    const withComment = new Uint8Array(zip.length + comment.length);
    withComment.set(zip);
    withComment.set(comment, zip.length);
    new DataView(withComment.buffer).setUint16(zip.length - 2, comment.length, true);
    await Deno.writeFile(join(dir, "c.zip"), withComment);
    assert.deepEqual(await extractZip(join(dir, "c.zip"), join(dir, "out")), ["x.txt"]);
    assert.equal(await Deno.readTextFile(join(dir, "out/x.txt")), "hello");
  } finally {
    await cleanup();
  }
});

Deno.test("extractZip rejects corrupt data, unsafe names and non-zips with the file named", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "bad.zip");
    await Deno.writeFile(path, await makeZip([{ name: "a.txt", data: "abc", deflate: true, crc: 1234 }]));
    await assert.rejects(extractZip(path, join(dir, "o1")), /bad\.zip: a\.txt is corrupt/);

    await Deno.writeFile(path, await makeZip([{ name: "../evil.txt", data: "x" }]));
    await assert.rejects(extractZip(path, join(dir, "o2")), /unsafe entry name/);
    await assert.rejects(Deno.stat(join(dir, "evil.txt")), Deno.errors.NotFound);

    await Deno.writeFile(path, new TextEncoder().encode("<html>404 not found</html>"));
    await assert.rejects(extractZip(path, join(dir, "o3")), /bad\.zip: not a zip file/);

    // Cut inside the compressed data: the central directory is gone.
    const good = await makeZip([{ name: "a.txt", data: "abc".repeat(1000), deflate: true }]);
    await Deno.writeFile(path, good.subarray(0, 40));
    await assert.rejects(extractZip(path, join(dir, "o4")), /not a zip file/);
  } finally {
    await cleanup();
  }
});

Deno.test("readZipEntry returns an entry's bytes in memory, stored or deflated, CRC-checked", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "a.zip");
    const text = "inflate me ".repeat(50);
    await Deno.writeFile(
      path,
      await makeZip([
        { name: "a/stored", data: "plain" },
        { name: "a/deflated", data: text, deflate: true },
        { name: "a/bad", data: "xyz", crc: 1 },
      ]),
    );
    using file = await Deno.open(path);
    const entries = await listZip(file, path);
    const read = async (i: number) => new TextDecoder().decode(await readZipEntry(file, entries[i], path));
    assert.equal(await read(0), "plain");
    assert.equal(await read(1), text);
    await assert.rejects(() => read(2), /a\.zip: a\/bad is corrupt \(size 3\/3, crc mismatch true\)/);
  } finally {
    await cleanup();
  }
});

import assert from "node:assert/strict";
import { IntellistorError } from "../errors.ts";
import { concatBytes, fromBase64, toBase64, utf8 } from "./bytes.ts";
import { generateRootKey, type Keyring, keyringFromEnv } from "./keys.ts";
import { createStreamKeys, decryptStream, encryptStream, openHeader } from "./stream.ts";

function keyringError(
  env: Record<string, string | undefined>,
  names?: Parameters<typeof keyringFromEnv>[1],
) {
  try {
    keyringFromEnv(env, names);
  } catch (error) {
    assert.ok(error instanceof IntellistorError, `expected IntellistorError, got ${error}`);
    return error;
  }
  assert.fail("keyringFromEnv accepted the environment");
}

async function roundTrip(made: Keyring, opened: Keyring, text: string): Promise<string> {
  const keys = await createStreamKeys(made);
  const chunks: Uint8Array[] = [];
  await ReadableStream.from([utf8(text)])
    .pipeThrough(encryptStream(keys))
    .pipeThrough(decryptStream(opened))
    .pipeTo(new WritableStream({ write: (chunk) => void chunks.push(chunk) }));
  return new TextDecoder().decode(concatBytes(...chunks));
}

Deno.test("generateRootKey returns base64 of 32 fresh random bytes that the keyring accepts", () => {
  const key = generateRootKey();
  assert.match(key, /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(fromBase64(key)!.length, 32);
  assert.notEqual(generateRootKey(), key);
  const keyring = keyringFromEnv({ INTELLISTOR_KEY: key });
  assert.equal(keyring.current.kind, "key");
  assert.equal(keyring.current.source, "INTELLISTOR_KEY");
  assert.deepEqual(keyring.current.kind === "key" && keyring.current.bytes, fromBase64(key));
});

Deno.test("no key and no passphrase is KEY_MISSING naming both variables and how to make a key", () => {
  for (const env of [{}, { INTELLISTOR_KEY: "", INTELLISTOR_PASSPHRASE: "" }]) {
    const error = keyringError(env);
    assert.equal(error.code, "KEY_MISSING");
    assert.ok(error.message.includes("INTELLISTOR_KEY"));
    assert.ok(error.message.includes("INTELLISTOR_PASSPHRASE"));
    assert.ok(error.hint.includes("intellistor key generate"));
    assert.ok(error.hint.includes("INTELLISTOR_KEY=") && error.hint.includes(".env"));
  }
  const custom = keyringError({ INTELLISTOR_KEY: generateRootKey() }, {
    keyEnv: "SITE_KEY",
    passphraseEnv: "SITE_PASSPHRASE",
  });
  assert.equal(custom.code, "KEY_MISSING");
  assert.ok(custom.message.includes("SITE_KEY") && custom.message.includes("SITE_PASSPHRASE"));
});

Deno.test("a malformed or wrong-length key is KEY_INVALID naming the variable, never the value", () => {
  const short = toBase64(new Uint8Array(16).fill(7));
  const long = toBase64(new Uint8Array(33).fill(7));
  const cases = [
    { INTELLISTOR_KEY: "not*base64*at*all" },
    { INTELLISTOR_KEY: short },
    { INTELLISTOR_KEY: long },
    { INTELLISTOR_KEY: generateRootKey().slice(0, 40) },
  ];
  for (const env of cases) {
    const error = keyringError(env);
    assert.equal(error.code, "KEY_INVALID");
    assert.ok(error.message.includes("INTELLISTOR_KEY"));
    assert.ok(error.hint.includes("intellistor key generate"));
    const shown = JSON.stringify(error.toJSON());
    assert.ok(!shown.includes(env.INTELLISTOR_KEY), "the key value leaked into the error");
  }
  const custom = keyringError({ SITE_KEY: short }, { keyEnv: "SITE_KEY" });
  assert.equal(custom.code, "KEY_INVALID");
  assert.ok(custom.message.includes("SITE_KEY"));
});

Deno.test("a malformed old key is KEY_INVALID naming INTELLISTOR_OLD_KEYS and its position only", () => {
  const bad = toBase64(new Uint8Array(20).fill(3));
  const error = keyringError({
    INTELLISTOR_KEY: generateRootKey(),
    INTELLISTOR_OLD_KEYS: `${generateRootKey()}, ${bad}`,
  });
  assert.equal(error.code, "KEY_INVALID");
  assert.ok(error.message.startsWith("Item 2 of INTELLISTOR_OLD_KEYS is not a valid key"));
  // The hint speaks of the list; "INTELLISTOR_OLD_KEYS[2]=<key>" is no .env syntax.
  assert.match(error.hint, /separated by commas/);
  assert.ok(!error.hint.includes("[2]"), error.hint);
  assert.ok(!JSON.stringify(error.toJSON()).includes(bad));
});

Deno.test("a passphrase shorter than 8 characters is KEY_INVALID without echoing it", () => {
  const error = keyringError({ INTELLISTOR_PASSPHRASE: "hunter2" });
  assert.equal(error.code, "KEY_INVALID");
  assert.ok(error.message.includes("INTELLISTOR_PASSPHRASE"));
  assert.ok(!JSON.stringify(error.toJSON()).includes("hunter2"));
  assert.equal(keyringFromEnv({ INTELLISTOR_PASSPHRASE: "hunter22" }).current.kind, "passphrase");
});

Deno.test("the keyring orders current key, passphrase, old keys, then numbered old passphrases", () => {
  const keyring = keyringFromEnv({
    INTELLISTOR_KEY: generateRootKey(),
    INTELLISTOR_PASSPHRASE: "a long passphrase",
    INTELLISTOR_OLD_KEYS: `${generateRootKey()},${generateRootKey()},`,
    INTELLISTOR_OLD_PASSPHRASE_2: "second old passphrase",
    INTELLISTOR_OLD_PASSPHRASE_1: "first old passphrase",
  });
  assert.equal(keyring.current, keyring.all[0]);
  assert.deepEqual(keyring.all.map((s) => `${s.kind} ${s.source}`), [
    "key INTELLISTOR_KEY",
    "passphrase INTELLISTOR_PASSPHRASE",
    "key INTELLISTOR_OLD_KEYS[1]",
    "key INTELLISTOR_OLD_KEYS[2]",
    "passphrase INTELLISTOR_OLD_PASSPHRASE_1",
    "passphrase INTELLISTOR_OLD_PASSPHRASE_2",
  ]);
  const onlyPassphrase = keyringFromEnv({ INTELLISTOR_PASSPHRASE: "a long passphrase" });
  assert.equal(onlyPassphrase.current.kind, "passphrase");
});

Deno.test("a gap in the old passphrase numbering is KEY_INVALID", () => {
  const error = keyringError({
    INTELLISTOR_KEY: generateRootKey(),
    INTELLISTOR_OLD_PASSPHRASE_1: "first old passphrase",
    INTELLISTOR_OLD_PASSPHRASE_3: "third old passphrase",
  });
  assert.equal(error.code, "KEY_INVALID");
  assert.ok(error.message.includes("INTELLISTOR_OLD_PASSPHRASE_3"));
  assert.ok(error.message.includes("INTELLISTOR_OLD_PASSPHRASE_2"));
});

Deno.test("secret values do not appear in JSON or console output of the keyring", () => {
  const key = generateRootKey();
  const keyring = keyringFromEnv({
    INTELLISTOR_KEY: key,
    INTELLISTOR_PASSPHRASE: "a long passphrase",
  });
  const shown = JSON.stringify(keyring) + Deno.inspect(keyring, { depth: 10 });
  assert.ok(!shown.includes(key));
  assert.ok(!shown.includes("a long passphrase"));
  // The key is held as bytes: neither the property nor a byte array may show.
  assert.ok(!shown.includes("bytes") && !shown.includes("Uint8Array"), shown);
  assert.ok(shown.includes("INTELLISTOR_KEY"));
});

Deno.test("after rotation an old key in INTELLISTOR_OLD_KEYS still restores old backups", async () => {
  const oldKey = generateRootKey();
  const before = keyringFromEnv({ INTELLISTOR_KEY: oldKey });
  const keys = await createStreamKeys(before);
  const object: Uint8Array[] = [];
  await ReadableStream.from([utf8("made before rotation")])
    .pipeThrough(encryptStream(keys))
    .pipeTo(new WritableStream({ write: (chunk) => void object.push(chunk) }));

  const newKey = generateRootKey();
  const rotated = keyringFromEnv({ INTELLISTOR_KEY: newKey, INTELLISTOR_OLD_KEYS: oldKey });
  const header = concatBytes(...object).slice(0, 172);
  assert.equal((await openHeader(header, rotated)).keyIdHex, keys.keyIdHex);
  assert.equal(await roundTrip(rotated, rotated, "new backup"), "new backup");
  assert.equal(
    (await createStreamKeys(rotated)).keyIdHex,
    (await createStreamKeys(
      keyringFromEnv({ INTELLISTOR_KEY: newKey }),
    )).keyIdHex,
    "new backups use the new key",
  );

  const withoutOld = keyringFromEnv({ INTELLISTOR_KEY: newKey });
  await assert.rejects(openHeader(header, withoutOld), (error) => {
    assert.ok(error instanceof IntellistorError);
    assert.equal(error.code, "WRONG_KEY");
    assert.ok(error.message.includes(keys.keyIdHex));
    return true;
  });
});

Deno.test("a passphrase opens backups whatever its Unicode normalisation form (NFC)", async () => {
  const composed = "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e";
  const decomposed = composed.normalize("NFD");
  assert.notEqual(composed, decomposed);
  const made = keyringFromEnv({ INTELLISTOR_PASSPHRASE: decomposed });
  const opened = keyringFromEnv({ INTELLISTOR_PASSPHRASE: composed });
  assert.equal(await roundTrip(made, opened, "normalised"), "normalised");
});

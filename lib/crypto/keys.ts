/**
 * Root secrets and the keyring (FORMAT.md §2 "Keys"): where the root secret
 * comes from (environment), and root → KEK / key_id derivation.
 *
 * Decisions (also recorded in docs/FORMAT.md by the lead):
 * - Root HKDFs (KEK, key_id) use an EMPTY salt. Per RFC 5869 §2.2 that is the
 *   same as HashLen zero bytes (HMAC pads the key with zeros), so either
 *   reading of "no salt" gives identical keys.
 * - A passphrase must have at least {@link MIN_PASSPHRASE_LENGTH} characters
 *   (Unicode code points after NFC). It is used verbatim otherwise (no
 *   trimming): scrypt makes guessing slow, not impossible.
 * - Secret values never appear in error messages, JSON or `console.log`
 *   output: the `bytes` / `passphrase` properties that `keyringFromEnv`
 *   builds are non-enumerable.
 */

import { scryptAsync } from "npm:@noble/hashes@2.4.0/scrypt.js";
import { IntellistorError } from "../errors.ts";
import type { Policy } from "../policy/policy.ts";
import { concatBytes, fromBase64, randomBytes, toBase64, toHex, utf8 } from "./bytes.ts";

/** Default variable holding the base64 root key. */
export const KEY_ENV_DEFAULT = "INTELLISTOR_KEY";
/** Default variable holding the passphrase (used when no key is set). */
export const PASSPHRASE_ENV_DEFAULT = "INTELLISTOR_PASSPHRASE";
/** Comma-separated older base64 root keys, tried on restore. */
export const OLD_KEYS_ENV = "INTELLISTOR_OLD_KEYS";
/** Prefix of the numbered older passphrases: `_1`, `_2`, … (consecutive). */
export const OLD_PASSPHRASE_ENV_PREFIX = "INTELLISTOR_OLD_PASSPHRASE_";
/** Size of a raw root key in bytes. */
export const ROOT_KEY_SIZE = 32;
/** Shortest accepted passphrase, in Unicode code points after NFC. */
export const MIN_PASSPHRASE_LENGTH = 8;

/** scrypt parameters: what writers use, and the bounds readers accept. */
export const SCRYPT_PARAMS = {
  defaultLog2N: 17,
  minLog2N: 17,
  maxLog2N: 20,
  r: 8,
  p: 1,
} as const;

/** A root secret. `source` is the environment variable NAME, for messages (never the value). */
export type RootSecret =
  | { kind: "key"; bytes: Uint8Array<ArrayBuffer>; source: string }
  | { kind: "passphrase"; passphrase: string; source: string };

/** The roots available to this process. */
export interface Keyring {
  /** used for new backups */
  current: RootSecret;
  /** current first, then older roots, all tried on restore */
  all: RootSecret[];
}

/** How a header's root was derived (the kdf fields of E). */
export type KdfParams =
  | { id: "raw" }
  | { id: "scrypt"; log2N: number; r: number; p: number; salt: Uint8Array<ArrayBuffer> };

/** Keys derived from one root: the KEK wraps DEKs, the key id names the root publicly. */
export interface RootKeys {
  readonly kek: CryptoKey;
  readonly keyId: Uint8Array<ArrayBuffer>;
  readonly keyIdHex: string;
}

const EMPTY_SALT = new Uint8Array(0);
const SCRYPT_SALT_PREFIX = utf8("bkp1/scrypt");

function keyInvalid(variable: string, problem: string): IntellistorError {
  const about = `A key is the base64 of exactly ${ROOT_KEY_SIZE} random bytes.`;
  const oldKey = /^(.*)\[(\d+)\]$/.exec(variable);
  if (oldKey) {
    // One item of the comma-separated list of older keys.
    return new IntellistorError(
      "KEY_INVALID",
      `Item ${oldKey[2]} of ${oldKey[1]} is not a valid key: ${problem}. ${about}`,
      `${oldKey[1]} lists the keys of older backups, separated by commas: restore that item's ` +
        "original value, or remove it if it never protected a backup.",
    );
  }
  return new IntellistorError(
    "KEY_INVALID",
    `${variable} is not a valid key: ${problem}. ${about}`,
    `Run "intellistor key generate" and put the printed key in the .env file as ${variable}=<key>. ` +
      "If this key protected existing backups, restore its original value instead: " +
      "backups cannot be restored without it.",
  );
}

function parseRootKey(value: string, variable: string): Uint8Array<ArrayBuffer> {
  const bytes = fromBase64(value.trim());
  if (bytes === undefined) throw keyInvalid(variable, "its value is not base64");
  if (bytes.length !== ROOT_KEY_SIZE) {
    throw keyInvalid(variable, `it decodes to ${bytes.length} bytes instead of ${ROOT_KEY_SIZE}`);
  }
  return bytes;
}

function checkPassphrase(passphrase: string, variable: string): void {
  if ([...passphrase.normalize("NFC")].length < MIN_PASSPHRASE_LENGTH) {
    throw new IntellistorError(
      "KEY_INVALID",
      `${variable} is too short: a passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters.`,
      `Use a longer passphrase, or a random key: run "intellistor key generate" ` +
        `and put ${KEY_ENV_DEFAULT}=<key> in the .env file.`,
    );
  }
}

// The secret value is non-enumerable so JSON.stringify and console.log never show it.
function keySecret(bytes: Uint8Array<ArrayBuffer>, source: string): RootSecret {
  const secret = { kind: "key", source } as RootSecret;
  Object.defineProperty(secret, "bytes", { value: bytes, enumerable: false });
  return secret;
}

function passphraseSecret(passphrase: string, source: string): RootSecret {
  const secret = { kind: "passphrase", source } as RootSecret;
  Object.defineProperty(secret, "passphrase", { value: passphrase, enumerable: false });
  return secret;
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== "";
}

function oldPassphrases(env: Record<string, string | undefined>): RootSecret[] {
  const numbers = Object.keys(env)
    .filter((name) => name.startsWith(OLD_PASSPHRASE_ENV_PREFIX) && isSet(env[name]))
    .map((name) => Number(name.slice(OLD_PASSPHRASE_ENV_PREFIX.length)))
    .filter((n) => Number.isInteger(n) && n >= 1)
    .sort((a, b) => a - b);
  const secrets: RootSecret[] = [];
  numbers.forEach((n, position) => {
    const variable = `${OLD_PASSPHRASE_ENV_PREFIX}${n}`;
    // A gap would silently ignore a passphrase the user believes is in the keyring.
    if (n !== position + 1) {
      throw new IntellistorError(
        "KEY_INVALID",
        `${variable} is set but ${OLD_PASSPHRASE_ENV_PREFIX}${position + 1} is not: ` +
          "old passphrases must be numbered consecutively from 1.",
        `Rename the old passphrase variables to ${OLD_PASSPHRASE_ENV_PREFIX}1, ` +
          `${OLD_PASSPHRASE_ENV_PREFIX}2, … in the .env file.`,
      );
    }
    const passphrase = env[variable] as string;
    checkPassphrase(passphrase, variable);
    secrets.push(passphraseSecret(passphrase, variable));
  });
  return secrets;
}

/**
 * Builds the keyring from environment values. `keyEnv` / `passphraseEnv` are
 * variable NAMES (defaults INTELLISTOR_KEY / INTELLISTOR_PASSPHRASE; a policy
 * may choose others). An empty value counts as unset.
 *
 * - If the key variable is set it is current (base64 of exactly 32 bytes,
 *   else KEY_INVALID); if the passphrase variable is set too, it joins the
 *   keyring after the key.
 * - Else the passphrase variable is current (at least 8 characters, else KEY_INVALID).
 * - Neither → KEY_MISSING.
 * - Older roots, tried on restore: INTELLISTOR_OLD_KEYS (comma-separated
 *   base64 keys), then INTELLISTOR_OLD_PASSPHRASE_1, _2, … (consecutive).
 */
export function keyringFromEnv(
  env: Record<string, string | undefined>,
  names?: { keyEnv?: string; passphraseEnv?: string },
): Keyring {
  const keyEnv = names?.keyEnv ?? KEY_ENV_DEFAULT;
  const passphraseEnv = names?.passphraseEnv ?? PASSPHRASE_ENV_DEFAULT;
  const all: RootSecret[] = [];

  const keyValue = env[keyEnv];
  if (isSet(keyValue)) all.push(keySecret(parseRootKey(keyValue, keyEnv), keyEnv));

  const passphrase = env[passphraseEnv];
  // Whitespace alone is "unset", as for the key (a copied .env.example line).
  if (isSet(passphrase)) {
    checkPassphrase(passphrase, passphraseEnv);
    all.push(passphraseSecret(passphrase, passphraseEnv));
  }

  if (all.length === 0) {
    throw new IntellistorError(
      "KEY_MISSING",
      `No encryption key: neither ${keyEnv} nor ${passphraseEnv} is set.`,
      `Run "intellistor key generate" and put the printed key in the .env file as ${keyEnv}=<key> ` +
        `(or set ${passphraseEnv}). Keep a copy of the key somewhere safe: ` +
        "backups cannot be restored without it.",
    );
  }

  const oldKeys = env[OLD_KEYS_ENV];
  if (isSet(oldKeys)) {
    oldKeys.split(",").map((item) => item.trim()).filter((item) => item !== "").forEach(
      (item, position) => {
        const source = `${OLD_KEYS_ENV}[${position + 1}]`;
        all.push(keySecret(parseRootKey(item, source), source));
      },
    );
  }
  all.push(...oldPassphrases(env));

  return { current: all[0], all };
}

/**
 * The keyring from the variables the policy names (`encryption.key_env`,
 * `encryption.passphrase_env`; INTELLISTOR_KEY… by default), as the CLI builds it.
 */
export function policyKeyring(
  policy: Pick<Policy, "encryption">,
  env: Record<string, string | undefined>,
): Keyring {
  return keyringFromEnv(env, {
    keyEnv: policy.encryption.key_env,
    passphraseEnv: policy.encryption.passphrase_env,
  });
}

/** A new random root key, base64 (what `intellistor key generate` prints). */
export function generateRootKey(): string {
  return toBase64(randomBytes(ROOT_KEY_SIZE));
}

/** Imports key material as an HKDF base key (non-extractable). */
export function importHkdfKey(material: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", material, "HKDF", false, ["deriveKey", "deriveBits"]);
}

/** HKDF-SHA-256 output bytes. */
export async function hkdfBytes(
  base: CryptoKey,
  salt: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info },
    base,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** HKDF-SHA-256 into a non-extractable 256-bit AES-GCM or HMAC-SHA-256 key. */
export function hkdfKey(
  base: CryptoKey,
  salt: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
  use: "AES-GCM" | "HMAC",
): Promise<CryptoKey> {
  const algorithm = use === "AES-GCM"
    ? { name: "AES-GCM", length: 256 }
    : { name: "HMAC", hash: "SHA-256", length: 256 };
  const usages: KeyUsage[] = use === "AES-GCM" ? ["encrypt", "decrypt"] : ["sign", "verify"];
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info },
    base,
    algorithm,
    false,
    usages,
  );
}

async function rootKeysFromRoot(root: Uint8Array<ArrayBuffer>): Promise<RootKeys> {
  const base = await importHkdfKey(root);
  const kek = await hkdfKey(base, EMPTY_SALT, utf8("bkp1 kek"), "AES-GCM");
  const keyId = (await hkdfBytes(base, EMPTY_SALT, utf8("bkp1 key-id"), 32)).slice(0, 16);
  return { kek, keyId, keyIdHex: toHex(keyId) };
}

/** root = scrypt(NFC(passphrase), "bkp1/scrypt" ‖ kdf_salt, N = 2^log2N, r, p, dkLen 32). */
async function passphraseRoot(
  passphrase: string,
  kdf: Extract<KdfParams, { id: "scrypt" }>,
): Promise<Uint8Array<ArrayBuffer>> {
  const derived = await scryptAsync(
    utf8(passphrase.normalize("NFC")),
    concatBytes(SCRYPT_SALT_PREFIX, kdf.salt),
    { N: 2 ** kdf.log2N, r: kdf.r, p: kdf.p, dkLen: 32 },
  );
  return new Uint8Array(derived);
}

// Derived root keys per secret object and kdf parameters, so that opening
// many backups (or the same one twice) runs scrypt once per salt.
const rootKeysCache = new WeakMap<RootSecret, Map<string, Promise<RootKeys>>>();
const ROOT_KEYS_CACHE_LIMIT = 256;

function cacheKeyOf(kdf: KdfParams): string {
  return kdf.id === "raw" ? "raw" : `scrypt/${kdf.log2N}/${kdf.r}/${kdf.p}/${toHex(kdf.salt)}`;
}

/**
 * KEK and key_id of a root secret under the given kdf parameters (`raw` for a
 * key, `scrypt` for a passphrase). Results are cached per secret object, so
 * repeated opens with the same keyring are cheap.
 */
export function deriveRootKeys(secret: RootSecret, kdf: KdfParams): Promise<RootKeys> {
  if ((secret.kind === "key") !== (kdf.id === "raw")) {
    throw new TypeError(`a ${secret.kind} root cannot be derived with kdf ${kdf.id}`);
  }
  let cache = rootKeysCache.get(secret);
  if (cache === undefined) {
    cache = new Map();
    rootKeysCache.set(secret, cache);
  }
  const cacheKey = cacheKeyOf(kdf);
  const cached = cache.get(cacheKey);
  if (cached !== undefined) return cached;

  const derived = (async () => {
    const root = secret.kind === "key"
      ? secret.bytes
      : await passphraseRoot(secret.passphrase, kdf as Extract<KdfParams, { id: "scrypt" }>);
    try {
      return await rootKeysFromRoot(root);
    } finally {
      // Best effort: the scrypt output is not needed once the keys exist.
      if (secret.kind === "passphrase") root.fill(0);
    }
  })();
  if (cache.size >= ROOT_KEYS_CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(cacheKey, derived);
  // A failed derivation must not stay cached.
  derived.catch(() => cache.delete(cacheKey));
  return derived;
}

/** Describes a root for messages, e.g. "key from INTELLISTOR_KEY" (never the value). */
export function describeSecret(secret: RootSecret): string {
  return `${secret.kind} from ${secret.source}`;
}

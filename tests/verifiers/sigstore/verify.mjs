// Independent verifier for the Sigstore bundles cto-ledger writes, by npm's
// @sigstore/bundle (parsing and shape checks) and @sigstore/verify (signature
// check). We do not verify the signature here ourselves: the library does.
//
//   node verify.mjs BUNDLE.json PUBKEY.pem
//
// Accepts a bundle v0.3 (application/vnd.dev.sigstore.bundle.v0.3+json) whose
// content is a DSSE envelope (payloadType application/vnd.in-toto+json, one
// signature) and whose verification material is {"publicKey": {"hint": KEYID}}
// with no certificate, tlog entries or timestamps. The PEM key (SPKI, Ed25519)
// is trusted under that hint only; tlog, CT-log and timestamp thresholds are 0.
//
// Prints one JSON line and exits 0 on success, 1 on any failure:
//   {"ok": true, "payloadType": ..., "keyid": ..., "statement_type": ..., "predicateType": ...}
//   {"ok": false, "error": "..."}
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import sigstoreBundle from '@sigstore/bundle';
import sigstoreVerify from '@sigstore/verify';

const { bundleFromJSON, BUNDLE_V03_MEDIA_TYPE } = sigstoreBundle;
const { toSignedEntity, toTrustMaterial, Verifier } = sigstoreVerify;

const IN_TOTO = 'application/vnd.in-toto+json';

function fail(message) {
  process.stdout.write(JSON.stringify({ ok: false, error: message }) + '\n');
  process.exit(1);
}

function describe(e) {
  let m = e && e.message ? e.message : String(e);
  if (e && typeof e.code === 'string' && !m.startsWith(e.code)) m = `${e.code}: ${m}`;
  if (e && Array.isArray(e.fields) && e.fields.length) m += ` (${e.fields.join(', ')})`;
  return m;
}

function main(argv) {
  if (argv.length !== 2) fail('usage: node verify.mjs BUNDLE.json PUBKEY.pem');
  const [bundlePath, keyPath] = argv;

  let json;
  try {
    json = JSON.parse(readFileSync(bundlePath, 'utf8'));
  } catch (e) {
    fail(`cannot read bundle ${bundlePath}: ${describe(e)}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    fail('bundle is not a JSON object');
  }

  // The library's parser (protobuf JSON mapping) and its v0.3 shape checks.
  let bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (e) {
    fail(`bundle rejected by @sigstore/bundle: ${describe(e)}`);
  }

  // What this verifier accepts, beyond what the library requires.
  if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE) {
    fail(`mediaType is ${JSON.stringify(bundle.mediaType)}, want ${JSON.stringify(BUNDLE_V03_MEDIA_TYPE)}`);
  }
  if (bundle.content?.$case !== 'dsseEnvelope') {
    fail(`content is ${bundle.content?.$case ?? 'missing'}, want dsseEnvelope`);
  }
  const vm = bundle.verificationMaterial;
  if (vm.content?.$case !== 'publicKey') {
    fail(`verificationMaterial is ${vm.content?.$case ?? 'missing'}, want publicKey`);
  }
  const hint = vm.content.publicKey.hint;
  if (!hint) fail('verificationMaterial.publicKey.hint is empty');
  if (vm.tlogEntries.length !== 0) fail('verificationMaterial.tlogEntries is not empty');
  if (vm.timestampVerificationData?.rfc3161Timestamps?.length) {
    fail('verificationMaterial.timestampVerificationData has timestamps');
  }
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO) {
    fail(`payloadType is ${JSON.stringify(env.payloadType)}, want ${JSON.stringify(IN_TOTO)}`);
  }
  // The library ignores the DSSE signature's keyid; a keyid that names a
  // different key than the hint is an inconsistent bundle, so refuse it.
  const sigKeyid = env.signatures[0].keyid;
  if (sigKeyid !== '' && sigKeyid !== hint) {
    fail(`dsseEnvelope.signatures[0].keyid ${JSON.stringify(sigKeyid)} differs from publicKey.hint ${JSON.stringify(hint)}`);
  }

  // The trusted key: an Ed25519 SubjectPublicKeyInfo in PEM, handed to the
  // library as DER under the bundle's hint (its key locator matches the hint
  // exactly and fails with "key not found" otherwise).
  let der;
  try {
    const key = createPublicKey(readFileSync(keyPath, 'utf8'));
    if (key.asymmetricKeyType !== 'ed25519') {
      fail(`public key is ${key.asymmetricKeyType}, want ed25519`);
    }
    der = key.export({ type: 'spki', format: 'der' });
  } catch (e) {
    fail(`cannot read public key ${keyPath}: ${describe(e)}`);
  }

  const emptyRoot = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
  };
  try {
    const trust = toTrustMaterial(emptyRoot, { [hint]: { rawBytes: der } });
    const verifier = new Verifier(trust, {
      tlogThreshold: 0,
      ctlogThreshold: 0,
      timestampThreshold: 0,
    });
    verifier.verify(toSignedEntity(bundle));
  } catch (e) {
    fail(`verification failed: ${describe(e)}`);
  }

  // Signature verified: report what was signed.
  let statement;
  try {
    statement = JSON.parse(Buffer.from(env.payload).toString('utf8'));
  } catch (e) {
    fail(`payload is not JSON: ${describe(e)}`);
  }
  if (statement === null || typeof statement !== 'object' || Array.isArray(statement)) {
    fail('payload is not a JSON object');
  }
  process.stdout.write(
    JSON.stringify({
      ok: true,
      payloadType: env.payloadType,
      keyid: hint,
      statement_type: statement._type ?? null,
      predicateType: statement.predicateType ?? null,
    }) + '\n',
  );
  process.exit(0);
}

try {
  main(process.argv.slice(2));
} catch (e) {
  fail(describe(e));
}

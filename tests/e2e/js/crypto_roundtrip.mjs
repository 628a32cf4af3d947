// matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm) against a running Myelin:
// encrypted messages both ways, then cross-signing and key backup bootstrapped through the server.
//
// Usage: node crypto_roundtrip.mjs --base-url http://127.0.0.1:8008 [--marker TEXT] [--timeout 60]
//        [--verbose]
// (or MYELIN_BASE_URL in the environment instead of --base-url).
//
// Prints one JSON line on stdout (everything else goes to stderr).

import { Console } from "node:console";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createHttpLog, describeError } from "./http_log.mjs";

globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        marker: { type: "string" },
        timeout: { type: "string", default: "60" },
        verbose: { type: "boolean", default: false },
    },
});

const startedAt = Date.now();
const baseUrl = (args["base-url"] ?? process.env.MYELIN_BASE_URL ?? "").replace(/\/+$/, "");
const hardTimeoutMs = Number(args.timeout) * 1000;
const marker = args.marker ?? `secret-${randomBytes(8).toString("hex")}`;

const report = {
    ok: false,
    error: null,
    sdk_version: null,
    crypto_version: null,
    users: null,
    room_id: null,
    alice_to_bob: { sent: null, event_id: null, wire_type: null, decrypted_body: null, sender_verified: null },
    bob_to_alice: { sent: null, event_id: null, wire_type: null, decrypted_body: null },
    cross_signing: null,
    cross_signing_ready: false,
    server_has_cross_signing_keys: false,
    secret_storage_ready: false,
    backup: { version: null, active_version: null, check: null, server_sessions: 0 },
    alice: null, // access token and device, for the test to query the server itself
    http: { requests: 0, non_2xx: [] },
    elapsed_ms: null,
};

function emit(exitCode) {
    report.elapsed_ms = Date.now() - startedAt;
    process.stdout.write(JSON.stringify(report) + "\n", () => process.exit(exitCode));
    setTimeout(() => process.exit(exitCode), 2000).unref();
}

let phase = "starting";
const hardTimer = setTimeout(() => {
    report.error = `hard timeout after ${hardTimeoutMs} ms (phase: ${phase})`;
    report.http.last = httpLog.slice(-20);
    emit(2);
}, hardTimeoutMs);

const { log: httpLog, loggingFetch } = createHttpLog(report, startedAt, args.verbose);


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(100);
    }
}

async function main() {
    if (!baseUrl) throw new Error("no base URL: pass --base-url or set MYELIN_BASE_URL");
    const sdk = await import("matrix-js-sdk");
    const { logger } = await import("matrix-js-sdk/lib/logger.js");
    logger.setLevel(args.verbose ? "debug" : "warn");
    const { createRequire } = await import("node:module");
    const require = createRequire(import.meta.url);
    report.sdk_version = require("matrix-js-sdk/package.json").version;
    const { readFileSync } = await import("node:fs");
    report.crypto_version = JSON.parse(readFileSync(new URL(
        "./node_modules/@matrix-org/matrix-sdk-crypto-wasm/package.json", import.meta.url), "utf8")).version;
    const { ClientEvent, EventType, MsgType, Preset, SyncState, Method } = sdk;

    const makeClient = (extra = {}) => sdk.createClient({ baseUrl, fetchFn: loggingFetch, ...extra });

    async function register(localpart, password) {
        const anon = makeClient();
        const body = { username: localpart, password, initial_device_display_name: "js-sdk rust crypto e2e" };
        let session;
        try {
            return await anon.registerRequest(body);
        } catch (e) {
            if (e?.httpStatus !== 401 || !e.data?.flows) throw e;
            session = e.data.session;
        }
        return anon.registerRequest({ ...body, auth: { type: "m.login.dummy", session } });
    }

    phase = "register";
    const suffix = randomBytes(3).toString("hex");
    const passwords = { alice: `pw-a-${suffix}`, bob: `pw-b-${suffix}` };
    const aliceCreds = await register(`alice_${suffix}`, passwords.alice);
    const bobCreds = await register(`bob_${suffix}`, passwords.bob);
    report.users = { alice: aliceCreds.user_id, bob: bobCreds.user_id };
    report.alice = { access_token: aliceCreds.access_token, device_id: aliceCreds.device_id };

    // Secret storage keys created during bootstrap, handed back when the SDK asks for them.
    const ssssKeys = new Map();
    const cryptoCallbacks = {
        getSecretStorageKey: async ({ keys }) => {
            for (const id of Object.keys(keys)) if (ssssKeys.has(id)) return [id, ssssKeys.get(id)];
            return null;
        },
        cacheSecretStorageKey: (keyId, _info, key) => ssssKeys.set(keyId, key),
    };
    const clientFor = (creds) =>
        makeClient({
            userId: creds.user_id,
            accessToken: creds.access_token,
            deviceId: creds.device_id,
            cryptoCallbacks,
        });
    const alice = clientFor(aliceCreds);
    const bob = clientFor(bobCreds);

    phase = "initRustCrypto";
    await alice.initRustCrypto({ useIndexedDB: false });
    await bob.initRustCrypto({ useIndexedDB: false });

    phase = "start clients";
    const started = (client, name) =>
        new Promise((resolve, reject) => {
            client.on(ClientEvent.Sync, (state, _prev, data) => {
                if (state === SyncState.Prepared || state === SyncState.Syncing) resolve();
                if (state === SyncState.Error) reject(new Error(`${name}'s sync failed: ${describeError(data?.error)}`));
            });
        });
    const aliceReady = started(alice, "alice");
    const bobReady = started(bob, "bob");
    await alice.startClient({ initialSyncLimit: 20 });
    await bob.startClient({ initialSyncLimit: 20 });
    await Promise.race([Promise.all([aliceReady, bobReady]), sleep(15000).then(() => {
        throw new Error("first syncs did not complete within 15 s");
    })]);

    phase = "create encrypted room, invite, join";
    const { room_id: roomId } = await alice.createRoom({
        preset: Preset.PrivateChat,
        name: "rust crypto e2e",
        invite: [bobCreds.user_id],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    report.room_id = roomId;
    await waitFor(() => bob.getRoom(roomId), 10000, "bob's invite to arrive by sync");
    await bob.joinRoom(roomId);
    await waitFor(
        () => alice.getRoom(roomId)?.getMember(bobCreds.user_id)?.membership === "join",
        10000,
        "alice to see bob joined",
    );
    await waitFor(() => bob.getRoom(roomId)?.hasEncryptionStateEvent(), 10000, "bob to see the room encrypted");
    if (!(await alice.getCrypto().isEncryptionEnabledInRoom(roomId))) throw new Error("alice: room not encrypted");

    async function roundTrip(from, to, text, slot) {
        report[slot].sent = text;
        const { event_id } = await from.sendEvent(roomId, EventType.RoomMessage, { msgtype: MsgType.Text, body: text });
        report[slot].event_id = event_id;
        const ev = await waitFor(
            () => {
                const e = to.getRoom(roomId)?.findEventById(event_id);
                return e && !e.isBeingDecrypted() && !e.isDecryptionFailure() && e.getClearContent() ? e : null;
            },
            15000,
            `${slot}: event ${event_id} decrypted by the receiver`,
        ).catch((err) => {
            const e = to.getRoom(roomId)?.findEventById(event_id);
            if (e) err.message += ` (seen: type ${e.getWireType()}, decryptionFailure ${e.isDecryptionFailure()}, ` +
                `reason ${e.decryptionFailureReason}, content ${JSON.stringify(e.getContent())})`;
            else err.message += " (event never seen by the receiver)";
            throw err;
        });
        report[slot].wire_type = ev.getWireType();
        report[slot].decrypted_body = ev.getContent().body;
        return ev;
    }

    phase = "alice -> bob";
    await roundTrip(alice, bob, `hello bob, ${marker}`, "alice_to_bob");
    phase = "bob -> alice";
    await roundTrip(bob, alice, `hi alice, ${marker} reply`, "bob_to_alice");

    phase = "bootstrap cross-signing";
    const crypto = alice.getCrypto();
    await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: aliceCreds.user_id },
                password: passwords.alice,
            });
        },
    });

    phase = "bootstrap secret storage and key backup";
    await crypto.bootstrapSecretStorage({
        createSecretStorageKey: () => crypto.createRecoveryKeyFromPassphrase(),
        setupNewSecretStorage: true,
        setupNewKeyBackup: true,
    });

    phase = "check cross-signing and backup";
    report.cross_signing = await crypto.getCrossSigningStatus();
    report.cross_signing_ready = await crypto.isCrossSigningReady();
    report.secret_storage_ready = await crypto.isSecretStorageReady();
    // bob downloads alice's keys from the server: the published cross-signing keys.
    report.server_has_cross_signing_keys = await bob.getCrypto().userHasCrossSigningKeys(aliceCreds.user_id, true);
    const check = await crypto.checkKeyBackupAndEnable();
    report.backup.check = check
        ? { version: check.backupInfo?.version ?? null, algorithm: check.backupInfo?.algorithm ?? null,
            trusted: check.trustInfo?.trusted ?? null, matchesDecryptionKey: check.trustInfo?.matchesDecryptionKey ?? null }
        : null;
    report.backup.active_version = await crypto.getActiveSessionBackupVersion();
    report.backup.version = (await crypto.getKeyBackupInfo())?.version ?? null;

    phase = "room keys uploaded to backup";
    const version = report.backup.active_version;
    if (!version) throw new Error("no active key backup version");
    const keys = await waitFor(async () => {
        const res = await alice.http.authedRequest(Method.Get, "/room_keys/keys", { version }, undefined, {
            prefix: "/_matrix/client/v3",
        });
        const rooms = res?.rooms ?? {};
        const count = Object.values(rooms).reduce((n, r) => n + Object.keys(r.sessions ?? {}).length, 0);
        return count > 0 ? count : null;
    }, 30000, `a session in backup version ${version}`);
    report.backup.server_sessions = keys;

    phase = "stopping";
    alice.stopClient();
    bob.stopClient();

    const problems = [];
    if (report.alice_to_bob.decrypted_body !== report.alice_to_bob.sent) problems.push("bob decrypted something else");
    if (report.bob_to_alice.decrypted_body !== report.bob_to_alice.sent) problems.push("alice decrypted something else");
    if (!report.cross_signing_ready) problems.push("cross-signing not ready");
    if (!report.server_has_cross_signing_keys) problems.push("bob cannot see alice's cross-signing keys");
    if (problems.length) throw new Error(problems.join("; "));
    report.ok = true;
}

main().then(
    () => {
        clearTimeout(hardTimer);
        emit(0);
    },
    (e) => {
        clearTimeout(hardTimer);
        report.error = `${phase}: ${describeError(e)}`;
        report.http.last = httpLog.slice(-20);
        emit(1);
    },
);

// matrix-js-sdk against a running Myelin: the real sync loop and timeline back-pagination.
//
// Usage: node sync_and_paginate.mjs --base-url http://127.0.0.1:8008 [--history 25] [--live 5]
//        [--midi-content '{"...": ...}'] [--timeout 60]
//        [--lazy-load-members] [--verbose]
// (or MYELIN_BASE_URL in the environment instead of --base-url).
//
// The server's rate limits must allow 2 registrations and ~35 sends in a few seconds.
//

import { Console } from "node:console";
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { createHttpLog, describeError } from "./http_log.mjs";

// The SDK's logger looks `console` up on every call: send all of it to stderr so that stdout
// carries nothing but the result line.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        history: { type: "string", default: "25" },
        live: { type: "string", default: "5" },
        "midi-content": { type: "string" },
        timeout: { type: "string", default: "60" },
        "lazy-load-members": { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
    },
});

const startedAt = Date.now();
const baseUrl = (args["base-url"] ?? process.env.MYELIN_BASE_URL ?? "").replace(/\/+$/, "");
const historyCount = Number(args.history);
const liveCount = Number(args.live);
const hardTimeoutMs = Number(args.timeout) * 1000;
const MIDI_TYPE = "org.matrix.midi";
const midiContent = args["midi-content"]
    ? JSON.parse(args["midi-content"])
    : {
          format: 1,
          ticks_per_beat: 480,
          tracks: [{ name: "lead ♪", events: [{ delta: 0, note_on: [60, 100] }, { delta: 480, note_off: [60, 0] }] }],
          flags: { loop: false, muted: null },
          large_int: 9007199254740991,
          empty: {},
      };

const report = {
    ok: false,
    error: null,
    base_url: baseUrl,
    sdk_version: null,
    users: null,
    bodies: [],
    timeline_types: [],
    expected_bodies: [],
    reached_room_create: false,
    back_pagination_requests: 0,
    pagination_token_exhausted: false,
    initial_sync_bodies: [],
    midi: { sent: midiContent, received: null, equal: false, via: null },
    live: { latencies_ms: {}, max_latency_ms: null, midi_latency_ms: null, arrived_via_sync: false },
    sync_states: [],
    http: { requests: 0, non_2xx: [] },
    elapsed_ms: null,
};

function emit(exitCode) {
    report.elapsed_ms = Date.now() - startedAt;
    process.stdout.write(JSON.stringify(report) + "\n", () => process.exit(exitCode));
    // If stdout never drains, still leave.
    setTimeout(() => process.exit(exitCode), 2000).unref();
}

const hardTimer = setTimeout(() => {
    report.error = `hard timeout after ${hardTimeoutMs} ms (phase: ${phase})`;
    emit(2);
}, hardTimeoutMs);

let phase = "starting";

// Every HTTP exchange the SDK makes goes through here, so a failure can name the request.
const { log: httpLog, loggingFetch } = createHttpLog(report, startedAt, args.verbose);

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}


async function main() {
    if (!baseUrl) throw new Error("no base URL: pass --base-url or set MYELIN_BASE_URL");
    if (!(historyCount >= 1 && liveCount >= 1)) throw new Error("--history and --live must be >= 1");

    const sdk = await import("matrix-js-sdk");
    const { logger } = await import("matrix-js-sdk/lib/logger.js");
    logger.setLevel(args.verbose ? "debug" : "warn");
    const { createRequire } = await import("node:module");
    report.sdk_version = createRequire(import.meta.url)("matrix-js-sdk/package.json").version;
    const { ClientEvent, RoomEvent, EventType, MsgType, Preset, Direction, SyncState } = sdk;

    const makeClient = (extra = {}) => sdk.createClient({ baseUrl, fetchFn: loggingFetch, ...extra });

    // Registration through the user-interactive auth dance: ask, then answer with m.login.dummy.
    async function register(localpart) {
        const anon = makeClient();
        const password = `pw-${randomBytes(8).toString("hex")}`;
        const body = { username: localpart, password, initial_device_display_name: "matrix-js-sdk e2e" };
        let session;
        try {
            const res = await anon.registerRequest(body);
            return { ...res, password }; // a server without UIA: fine too
        } catch (e) {
            if (e?.httpStatus !== 401 || !e.data?.flows) throw e;
            const flows = e.data.flows.map((f) => f.stages);
            if (!flows.some((stages) => stages.length === 1 && stages[0] === "m.login.dummy")) {
                throw new Error(`no m.login.dummy-only flow offered: ${JSON.stringify(e.data)}`);
            }
            session = e.data.session;
        }
        const res = await anon.registerRequest({ ...body, auth: { type: "m.login.dummy", session } });
        return { ...res, password };
    }

    phase = "register";
    const suffix = randomBytes(3).toString("hex");
    const aliceCreds = await register(`alice_${suffix}`);
    const bobCreds = await register(`bob_${suffix}`);
    report.users = { alice: aliceCreds.user_id, bob: bobCreds.user_id };
    const clientFor = (creds) =>
        makeClient({ userId: creds.user_id, accessToken: creds.access_token, deviceId: creds.device_id });
    const alice = clientFor(aliceCreds);
    const bob = clientFor(bobCreds);
    const who = await bob.whoami();
    if (who.user_id !== bobCreds.user_id) throw new Error(`whoami says ${who.user_id}, not ${bobCreds.user_id}`);

    phase = "create room, invite, join";
    const { room_id: roomId } = await alice.createRoom({
        preset: Preset.PrivateChat,
        name: "js-sdk e2e",
        topic: "sync and back-pagination",
    });
    await alice.invite(roomId, bobCreds.user_id);
    await bob.joinRoom(roomId);

    const send = async (i) => {
        const text = `message ${i}`;
        report.expected_bodies.push(text);
        const sentAt = Date.now();
        const { event_id } = await alice.sendEvent(roomId, EventType.RoomMessage, { msgtype: MsgType.Text, body: text });
        return { event_id, text, sentAt };
    };

    phase = "history before bob syncs";
    for (let i = 1; i <= historyCount; i++) await send(i);

    // Bob's client: the SDK's own sync loop, seen only through its events.
    const arrivals = new Map(); // event_id -> { at, live }
    const waiters = new Map(); // event_id -> resolve
    bob.on(RoomEvent.Timeline, (event, room, toStartOfTimeline, removed, data) => {
        if (room?.roomId !== roomId || removed) return;
        const id = event.getId();
        if (!arrivals.has(id)) arrivals.set(id, { at: Date.now(), live: Boolean(data?.liveEvent), toStartOfTimeline });
        waiters.get(id)?.();
    });
    const waitForEvent = (eventId) =>
        new Promise((resolve) => {
            if (arrivals.has(eventId)) return resolve();
            waiters.set(eventId, resolve);
        });

    let syncError = null;
    const prepared = new Promise((resolve, reject) => {
        bob.on(ClientEvent.Sync, (state, prevState, data) => {
            const last = report.sync_states[report.sync_states.length - 1];
            if (last !== state) report.sync_states.push(state);
            if (state === SyncState.Prepared || state === SyncState.Syncing) resolve();
            if (state === SyncState.Error) {
                syncError = data?.error;
                if (args.verbose) process.stderr.write(`[sync] ERROR ${describeError(data?.error)}\n`);
                // Against a local server an error before the first sync is never a blip: the SDK
                // would only keep retrying the same request. Fail now, naming it.
                if (!report.sync_states.includes(SyncState.Prepared)) {
                    reject(new Error(`sync loop failed before its first sync: ${describeError(syncError)}`));
                }
            }
            if (state === SyncState.Stopped && prevState !== SyncState.Stopped) reject(new Error("sync stopped"));
        });
    });

    phase = "bob's initial sync";
    await bob.startClient({ initialSyncLimit: 5, lazyLoadMembers: args["lazy-load-members"] });
    try {
        await withTimeout(prepared, 15000, "bob's first sync (SyncState PREPARED)");
    } catch (e) {
        if (syncError) e.message += `; last sync error: ${describeError(syncError)}`;
        throw e;
    }
    const room = bob.getRoom(roomId);
    if (!room) throw new Error(`bob's client has no room ${roomId} after the initial sync`);
    report.initial_sync_bodies = room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === EventType.RoomMessage)
        .map((e) => e.getContent().body);

    phase = "live events";
    const live = [];
    for (let i = historyCount + 1; i <= historyCount + liveCount; i++) {
        const sent = await send(i);
        live.push(sent);
        await withTimeout(waitForEvent(sent.event_id), 10000, `live event "${sent.text}" in bob's sync`);
    }
    const midiSentAt = Date.now();
    const { event_id: midiId } = await alice.sendEvent(roomId, MIDI_TYPE, structuredClone(midiContent));
    await withTimeout(waitForEvent(midiId), 10000, `live ${MIDI_TYPE} event in bob's sync`);

    for (const { event_id, text, sentAt } of live) {
        report.live.latencies_ms[text] = arrivals.get(event_id).at - sentAt;
    }
    report.live.midi_latency_ms = arrivals.get(midiId).at - midiSentAt;
    report.live.latencies_ms[MIDI_TYPE] = report.live.midi_latency_ms;
    report.live.max_latency_ms = Math.max(...Object.values(report.live.latencies_ms));
    report.live.arrived_via_sync = [...live.map((l) => l.event_id), midiId].every((id) => arrivals.get(id).live);

    const midiEvent = room.findEventById(midiId);
    report.midi.received = midiEvent ? midiEvent.getContent() : null;
    report.midi.via = midiEvent ? "sync" : null;
    report.midi.equal = isDeepStrictEqual(report.midi.received, midiContent);

    phase = "back-pagination";
    const timeline = room.getLiveTimeline();
    for (let guard = 0; guard < 100; guard++) {
        report.back_pagination_requests += 1;
        const more = await withTimeout(
            bob.paginateEventTimeline(timeline, { backwards: true, limit: 7 }),
            10000,
            "a back-pagination page",
        );
        if (!more) break;
    }
    report.pagination_token_exhausted = timeline.getPaginationToken(Direction.Backward) === null;

    // The timeline may have been replaced by a gappy sync meanwhile: read the one we paginated.
    const events = room.getLiveTimeline() === timeline ? timeline.getEvents() : room.getLiveTimeline().getEvents();
    report.timeline_types = events.map((e) => e.getType());
    report.bodies = events.filter((e) => e.getType() === EventType.RoomMessage).map((e) => e.getContent().body);
    report.reached_room_create = events.length > 0 && events[0].getType() === EventType.RoomCreate;
    if (args["lazy-load-members"]) {
        // What a client does when the room is opened: fetch the members lazy loading left out.
        await room.loadMembersIfNeeded();
        report.joined_members = room.getJoinedMembers().map((m) => m.userId).sort();
    }

    const paged = room.findEventById(midiId);
    if (paged && !isDeepStrictEqual(paged.getContent(), midiContent)) {
        report.midi.equal = false;
        report.midi.received = paged.getContent();
    }

    phase = "stopping";
    bob.stopClient();
    alice.stopClient();

    const problems = [];
    if (!isDeepStrictEqual(report.bodies, report.expected_bodies)) problems.push("bodies differ from what was sent");
    if (!report.midi.equal) problems.push(`${MIDI_TYPE} content changed`);
    if (!report.reached_room_create) problems.push("timeline does not start with m.room.create");
    if (!report.pagination_token_exhausted) problems.push("back-pagination never reached the start");
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
        report.http.last = httpLog.slice(-15);
        emit(1);
    },
);

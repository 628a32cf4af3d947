// Shared by the end-to-end scripts: a fetch that records every request the SDK makes (for the
// report when something fails), and a readable description of SDK errors.

export function createHttpLog(report, startedAt, verbose) {
    const log = [];
    async function loggingFetch(input, init = {}) {
        const url = new URL(input instanceof Request ? input.url : String(input));
        const entry = {
            t_ms: Date.now() - startedAt,
            method: (init.method ?? "GET").toUpperCase(),
            path: url.pathname + (url.search ? url.search.replace(/access_token=[^&]*/, "access_token=…") : ""),
            status: null,
        };
        log.push(entry);
        report.http.requests += 1;
        let response;
        try {
            response = await globalThis.fetch(input, init);
        } catch (e) {
            entry.status = `network error: ${e?.name ?? e}`;
            throw e;
        }
        entry.status = response.status;
        if (!response.ok) {
            let body = "";
            try {
                body = (await response.clone().text()).slice(0, 500);
            } catch {
                // body unreadable: keep the status alone
            }
            entry.body = body;
            report.http.non_2xx.push(entry);
        }
        if (verbose) process.stderr.write(`[http] ${entry.method} ${entry.path} -> ${entry.status}\n`);
        return response;
    }
    return { log, loggingFetch };
}

export function describeError(e) {
    if (e && typeof e === "object" && "httpStatus" in e) {
        const where = e.url ? ` from ${new URL(e.url).pathname}` : "";
        return `${e.name}: HTTP ${e.httpStatus}${where}: ${e.data ? JSON.stringify(e.data) : e.message}`;
    }
    return e?.stack ?? String(e);
}

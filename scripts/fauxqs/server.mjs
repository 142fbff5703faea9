// Runs the fauxqs SQS/S3 emulator for the test suite on loopback only (its own CLI binds every interface).
// Usage: FAUXQS_HOME=<folder holding node_modules/fauxqs> node scripts/fauxqs/server.mjs <port>
// (scripts/setup-services.sh installs fauxqs@1.9.2 from ./package-lock.json into /opt/longshore-fauxqs and starts this).
// Queue URLs take the request's Host header (no `host` option), so a client pointed at http://127.0.0.1:<port> gets
// URLs it can reach; S3 clients must use path-style requests (an IP host is never rewritten as a bucket name); the
// region comes from each request's SigV4 credential scope.
import path from "node:path";
import { pathToFileURL } from "node:url";

const home = process.env.FAUXQS_HOME ?? "/opt/longshore-fauxqs";
const port = Number.parseInt(process.argv[2] ?? process.env.FAUXQS_PORT ?? "4566", 10);
// The package exports only an ESM entry point; import it by path since it lives outside this repository.
const { buildApp } = await import(pathToFileURL(path.join(home, "node_modules", "fauxqs", "dist", "app.js")).href);

const app = buildApp({ logger: false });
await app.listen({ port, host: "127.0.0.1" });
console.log(`fauxqs listening on http://127.0.0.1:${port}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => app.close().then(() => process.exit(0)));
}

// A thin layer over the code protoc-gen-es makes from the contract (copied
// to src/gen by scripts/check-clients; `buf generate` writes it to gen/ts),
// for the two things every caller would otherwise write: the bearer token
// on every call, and errors that carry their google.rpc details.

import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

/** A failed call: the gRPC code's name, the message, and BadRequest's field violations. */
export class MeshworkError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fieldViolations: Record<string, string> = {},
  ) {
    super(`${code}: ${message}`);
  }
}

/** gRPC (HTTP/2) to the gateway at `baseUrl`, with `token` on every call; see meshworkError for its errors. */
export function grpcTransport(baseUrl: string, token?: string): Transport {
  const withToken: Interceptor = (next) => (request) => {
    if (token) request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  return createGrpcTransport({ baseUrl, interceptors: [withToken] });
}

/**
 * The Connect protocol to the gateway at `baseUrl`: JSON or binary, over
 * HTTP/1.1 or HTTP/2, with `token` on every call. Methods the contract marks
 * NO_SIDE_EFFECTS (GetOrder, ListUserOrders, ...) go as GETs, the message in
 * the query, so that an HTTP cache may keep their answers.
 */
export function connectTransport(
  baseUrl: string,
  token: string | undefined,
  options: { httpVersion: "1.1" | "2"; binary: boolean },
): Transport {
  const withToken: Interceptor = (next) => (request) => {
    if (token) request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  return createConnectTransport({
    baseUrl,
    httpVersion: options.httpVersion,
    useBinaryFormat: options.binary,
    useHttpGet: true,
    interceptors: [withToken],
  });
}

/**
 * Any error of a call, gRPC, Connect or REST, as a MeshworkError. (Connect's clients
 * turn whatever an interceptor throws into a ConnectError, so gRPC errors
 * are converted here, where they are caught.)
 */
export function meshworkError(error: unknown): MeshworkError {
  if (error instanceof MeshworkError) return error;
  return fromConnectError(ConnectError.from(error));
}

function fromConnectError(error: ConnectError): MeshworkError {
  let violations: Record<string, string> = {};
  for (const detail of error.details) {
    if ("type" in detail && detail.type === "google.rpc.BadRequest") violations = fieldViolations(detail.value);
  }
  return new MeshworkError(codeName(error.code), error.rawMessage, violations);
}

function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * google.rpc.BadRequest's field violations, read off the wire: the googleapis
 * types are not generated for TypeScript unless the contract imports them.
 * BadRequest { repeated FieldViolation field_violations = 1; }
 * FieldViolation { string field = 1; string description = 2; }
 */
function fieldViolations(bytes: Uint8Array): Record<string, string> {
  const violations: Record<string, string> = {};
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (number !== 1) {
      reader.skip(wireType);
      continue;
    }
    const violation = new BinaryReader(reader.bytes());
    let field = "";
    let description = "";
    while (violation.pos < violation.len) {
      const [inner, innerType] = violation.tag();
      if (inner === 1) field = violation.string();
      else if (inner === 2) description = violation.string();
      else violation.skip(innerType);
    }
    violations[field] = description;
  }
  return violations;
}

/** REST/JSON through the gateway, with the same errors. */
export class Rest {
  constructor(
    private readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) {
      let violations: Record<string, string> = {};
      for (const detail of json.details ?? []) {
        if (String(detail["@type"]).endsWith("google.rpc.BadRequest")) {
          violations = Object.fromEntries(
            (detail.fieldViolations ?? []).map((v: { field: string; description: string }) => [v.field, v.description]),
          );
        }
      }
      throw new MeshworkError(codeName(json.code as Code), json.message, violations);
    }
    return json as T;
  }
}

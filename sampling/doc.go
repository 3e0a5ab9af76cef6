// Package sampling is rampart's tracing and metrics core: one sampling
// decision per logical call, about 1% of successful calls traced, every call
// that saw an error exported, and allocation-free metrics recording. The
// transports (httpmw, grpcmw) drive it; it knows nothing of HTTP or gRPC.
//
// # Model
//
// A [Tracer] starts one [Call] per logical call (one request as the caller
// sees it) and one [Attempt] per try of that call on a node. The call is
// "errored" when any attempt ended with [Failure] or [Rejected], when it
// makes a second attempt (a call is retried only after an attempt that did
// not succeed, such as a 429 or a ResourceExhausted with pushback, which are
// [Neutral] for the breaker), when a policy refused it ([Call.Rejected]) or
// when it ends with a non-nil error. An errored
// call is always exported with status Error, whatever the head decision was;
// a call that is not errored is exported only when head-sampled.
//
// # Mechanism
//
// The OpenTelemetry SDK decides at span start and drops unsampled spans, so a
// call that fails after an unsampled start would be lost. rampart therefore
// makes its own head decision and keeps a cheap attempt log:
//
//   - Head decision at [Tracer.Start]: a sampled parent span in ctx means
//     sampled; otherwise the call is sampled iff [SampledByRatio] says so for
//     the trace ID (the parent's, or a fresh random one when there is no
//     parent). This is the rule of sdktrace.TraceIDRatioBased, so services
//     using that sampler with the same ratio agree on the same traces.
//   - A sampled call creates real spans at once through the configured
//     TracerProvider (logical span now, attempt spans as attempts start), so
//     downstream services see the exported span IDs.
//   - A call that is not sampled creates no span and allocates nothing: a
//     pooled per-call record logs each attempt (start and end time, node,
//     partition, outcome, error, backoff). Every attempt still propagates a
//     W3C traceparent with the call's trace ID, a generated span ID and the
//     sampled flag unset, through the configured propagator.
//   - When such a call turns out errored, [Call.End] builds its spans after
//     the fact with trace.WithTimestamp (real start and end times), parented
//     on a remote span context with the call's trace ID and the sampled flag
//     set, so that a ParentBased sampler keeps them.
//
// # Limits
//
//   - The TracerProvider's sampler must keep spans whose parent is sampled:
//     sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)) is the compatible
//     choice (rampart makes its own head decision with [WithRatio]; the
//     provider's root sampler is never consulted). A sampler that drops
//     sampled-parent spans (sdktrace.NeverSample) drops rampart's spans too.
//   - A call promoted after the fact was not sampled downstream: downstream
//     services have no spans for it (unless they promote their own errors),
//     and the span IDs they saw in traceparent are not the IDs exported. The
//     exported attempt span carries the propagated ID as
//     rampart.propagated_span_id for correlation by hand.
//   - The SDK cannot be told the trace ID of a root span. A call with no
//     parent span (rampart chose its trace ID) is exported with a remote
//     parent that carries the trace ID and a random span ID, so its logical
//     span's parent is never found in the backend; rampart.synthetic_parent
//     is set on it. A call with a parent is exported under that parent.
//   - A call whose parent is valid but not sampled and that rampart head-samples
//     (only when the upstream used a smaller ratio) is exported under the
//     unsampled parent, which the backend will not have.
//
// # Lifetime
//
// A Call and the contexts returned by [Tracer.Start] and [Call.StartAttempt]
// are pooled: they must not be used once [Call.End] has returned, because
// their memory serves later calls. Transports end a call only when nothing
// can observe those contexts any more (for net/http: after the response body
// is closed, and not handing the attempt's request back to the caller).
// [WithoutPooling] lifts this rule at the cost of one allocation per call.
//
// # Metrics
//
// [Metrics] records calls, attempts, retries, retry-budget refusals, breaker
// state and transitions, bulkhead and rate-limit rejections and waits,
// failovers and call duration through the OpenTelemetry metric API. The only
// attributes are node, partition, policy, outcome (and from/to of a
// transition or failover): never a URL, path, query or header value.
// Attribute sets are built once per distinct combination and cached, so
// recording allocates nothing.
//
// # Experimental
//
// The API of this package may still change before rampart's first release.
package sampling

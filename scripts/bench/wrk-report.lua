-- SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
--
-- wrk script of the triage benchmarks (scripts/bench/). Arguments after
-- "--" on the wrk command line:
--   close   send "Connection: close", so that every request opens a new
--           connection (wrk reconnects after each response)
-- At the end it prints one line "bench-json: {...}" with the totals and
-- the latency percentiles in microseconds, p99.9 (key p999) among them,
-- which wrk's text output rounds or leaves out.

function init(args)
	for _, arg in ipairs(args) do
		if arg == "close" then
			wrk.headers["Connection"] = "close"
		end
	end
end

function done(summary, latency, requests)
	local errors = summary.errors
	io.write(string.format(
		'bench-json: {"requests":%d,"duration_us":%d,"bytes":%d,'
			.. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
			.. '"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,'
			.. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
		summary.requests, summary.duration, summary.bytes,
		errors.connect, errors.read, errors.write, errors.status, errors.timeout,
		latency.mean, latency.stdev, latency.min, latency.max,
		latency:percentile(50), latency:percentile(75),
		latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9)))
end

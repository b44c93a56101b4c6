// Package metrics is the optional Prometheus endpoint: a collector that reads the GPU and
// container snapshots and the open SSH sessions at scrape time (no background work), and a
// plain-HTTP server for /metrics. Off unless metrics_addr is configured.
package metrics

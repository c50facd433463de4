package registryext

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the registry's Prometheus metrics, in a registry of their
// own (one per Server).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	denials  *prometheus.CounterVec
	alerts   *prometheus.CounterVec
	// The alert webhook's deliveries.
	alertsSent    prometheus.Counter
	alertFailures prometheus.Counter
	alertDropped  *prometheus.CounterVec
	alertQueue    prometheus.Gauge
	audited       prometheus.Counter
	auditErrs     prometheus.Counter
	referrers     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "requests_total",
			Help: "HTTP requests served, by method and status code.",
		}, []string{"method", "code"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "denials_total",
			Help: "Requests refused by an immutability rule, by rule.",
		}, []string{"rule"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "alerts_total",
			Help: "Access-pattern alerts raised (refused requests), by rule and operation.",
		}, []string{"rule", "operation"}),
		alertsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "alert_webhook_sent_total",
			Help: "Alerts the alert webhook accepted.",
		}),
		alertFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "alert_webhook_failures_total",
			Help: "Failed posts to the alert webhook (each is retried).",
		}),
		alertDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "alert_webhook_dropped_total",
			Help: "Alerts never delivered to the alert webhook, by reason: queue-full or shutdown; alert on any.",
		}, []string{"reason"}),
		alertQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "alert_webhook_queue",
			Help: "Alerts waiting to be posted to the alert webhook.",
		}),
		audited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "audit_entries_total",
			Help: "Entries appended to the audit log.",
		}),
		auditErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "audit_errors_total",
			Help: "Mutating requests that could not be appended to the audit log; alert on any.",
		}),
		referrers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "referrers_served_total",
			Help: "Referrers API responses served.",
		}),
	}
	m.reg.MustRegister(m.requests, m.denials, m.alerts, m.alertsSent, m.alertFailures, m.alertDropped, m.alertQueue, m.audited, m.auditErrs, m.referrers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(method string, code int) {
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

// denied counts a refused request. Rules are the configured rules' and
// ociwf's own, operations a fixed set: both label sets stay bounded. The
// repository, which clients name, is no label.
func (m *metrics) denied(rule, operation string) {
	m.denials.WithLabelValues(rule).Inc()
	m.alerts.WithLabelValues(rule, operation).Inc()
}

// handler serves the metrics.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/spf13/cobra"

	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/registryext"
)

func (a *app) registryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Run ociwf's own OCI registry"}
	var addr, root, config, rulesFile, auditLog, metricsAddr string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the CNCF Distribution registry with ociwf's extensions",
		Long: `Serve runs the embedded CNCF Distribution registry with filesystem storage
under --root, or with everything a Distribution configuration file (--config)
sets up: storage drivers (S3, GCS, Azure, ...), auth (htpasswd, token) and
every http option (addr, net, tls with client certificates, prefix, headers,
http2, h2c, draintimeout). It listens on --addr if given, else on the
configuration's http.addr, else on ` + registryext.DefaultAddr + ` (loopback).
Abandoned uploads are purged as Distribution does (older than 168h, daily);
slow or stalled request bodies are cut off (docs/registry.md).

ociwf's repository middleware enforces tag immutability on the server: by
default every semantic-version tag (v?MAJOR.MINOR.PATCH[-pre][+build]) is
immutable and cosign's signature and attestation tags are append-only;
--rules FILE sets other rules (docs/registry.md). Refused requests get 403
DENIED naming the tag, its digest and the rule. --audit-log appends every
mutating request to a hash-chained log (check it with ociwf audit verify);
--metrics-addr serves Prometheus metrics on /metrics.

It stops gracefully on SIGINT or SIGTERM. A health endpoint answers on ` + registryext.HealthPath + `.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level(a.verbose)}))
			registryext.RouteDistributionLogs(log)
			cfg := registryext.Config{Addr: addr, Root: root, Logger: log, AuditLog: auditLog, MetricsAddr: metricsAddr}
			if config != "" {
				if cmd.Flags().Changed("root") {
					return usagef("--root and --config are mutually exclusive: set the storage in the configuration file")
				}
				f, err := os.Open(config)
				if err != nil {
					return err
				}
				cfg.Distribution, err = configuration.Parse(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("distribution configuration %s: %w", config, err)
				}
				root = ""
			}
			if rulesFile != "" {
				rules, err := immutability.Load(rulesFile)
				if err != nil {
					return err
				}
				cfg.Rules = rules
			}
			srv, err := registryext.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve() }()
			scheme := "http"
			if srv.TLS() {
				scheme = "https"
			}
			a.emit(map[string]string{"addr": srv.Addr(), "net": srv.Network(), "scheme": scheme, "root": root, "metrics": srv.MetricsAddr()}, func(w io.Writer) {
				if srv.Network() == "unix" {
					fmt.Fprintf(w, "Serving on unix:%s (%s, storage %s)\n", srv.Addr(), scheme, storageOf(root, config))
					return
				}
				fmt.Fprintf(w, "Serving on %s://%s (storage %s)\n", scheme, srv.Addr(), storageOf(root, config))
			})
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
			}
			// Shutdown bounds the wait by http.draintimeout (default 30s).
			if err := srv.Shutdown(context.Background()); err != nil {
				return err
			}
			return <-done
		},
	}
	serve.Flags().StringVar(&addr, "addr", "", "listen address (default: http.addr of --config, else "+registryext.DefaultAddr+")")
	serve.Flags().StringVar(&root, "root", "./ociwf-registry", "storage directory")
	serve.Flags().StringVar(&config, "config", "", "Distribution configuration file (storage, auth, TLS)")
	serve.Flags().StringVar(&rulesFile, "rules", "", "immutability rules file (default: semantic-version tags immutable)")
	serve.Flags().StringVar(&auditLog, "audit-log", "", "append every mutating request to this hash-chained JSON Lines file")
	serve.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address")
	cmd.AddCommand(serve)
	return cmd
}

func storageOf(root, config string) string {
	if config != "" {
		return "from " + config
	}
	return root
}

func level(verbose bool) slog.Level {
	if verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

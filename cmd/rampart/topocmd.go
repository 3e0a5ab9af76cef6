package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-go/rampart/topology"
)

//go:embed default-topology.json
var defaultTopology []byte

// loadMap reads a topology map from a file path or an http(s) URL; an empty
// spec means the embedded default cluster.
func loadMap(ctx context.Context, spec string) (*topology.Map, error) {
	if spec == "" {
		return topology.Parse(defaultTopology)
	}
	var src topology.Source
	if strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://") {
		src = topology.HTTP(spec)
	} else {
		src = topology.File(spec)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("no map returned")
	}
	return m, nil
}

func runTopology(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: rampart topology validate FILE|URL\n       rampart topology lookup [--topology FILE|URL] [--json] KEY")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "validate":
		if len(args) != 2 {
			return usage()
		}
		m, err := loadMap(ctx, args[1])
		if err != nil {
			fmt.Fprintf(stderr, "invalid: %v\n", err)
			return 1
		}
		nodes := m.Nodes()
		fmt.Fprintf(stdout, "valid: epoch %d, %d partitions, %d nodes\n", m.Epoch, len(m.Partitions), len(nodes))
		return 0
	case "lookup":
		fs := flag.NewFlagSet("topology lookup", flag.ContinueOnError)
		fs.SetOutput(stderr)
		spec := fs.String("topology", "", "topology map `FILE|URL` (default: the embedded drill cluster)")
		asJSON := fs.Bool("json", false, "print the result as JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return parseExit(err)
		}
		if fs.NArg() != 1 {
			return usage()
		}
		m, err := loadMap(ctx, *spec)
		if err != nil {
			fmt.Fprintf(stderr, "rampart: %v\n", err)
			return 1
		}
		key := fs.Arg(0)
		h := topology.FNV1a32(key)
		p := m.Partition(h)
		if *asJSON {
			out, _ := json.Marshal(map[string]any{
				"key": key, "hash": fmt.Sprintf("%08x", h), "partition": p.Index,
				"primary": p.Primary, "replicas": p.Replicas,
			})
			fmt.Fprintln(stdout, string(out))
			return 0
		}
		fmt.Fprintf(stdout, "key %q hash %08x -> partition %d [%08x-%08x]\n  primary  %s\n", key, h, p.Index, p.HashStart, p.HashEnd, p.Primary)
		for _, r := range p.Replicas {
			fmt.Fprintf(stdout, "  replica  %s\n", r)
		}
		return 0
	default:
		return usage()
	}
}

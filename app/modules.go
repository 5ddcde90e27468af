// Package app wires logengine's modules into roles: it starts them in
// dependency order, serves one HTTP listener per role, reports readiness and
// health, and stops everything in reverse order on shutdown.
package app

import (
	"fmt"
	"slices"
	"strings"
)

// Role is a deployable part of the pipeline.
type Role string

// The roles; "all" is the module that depends on the three others.
const (
	RoleProducer Role = "producer"
	RoleConsumer Role = "consumer"
	RoleGateway  Role = "gateway"
	RoleAll      Role = "all"
)

// servingRoles lists the roles with a listener, in start order.
func servingRoles() []Role { return []Role{RoleProducer, RoleConsumer, RoleGateway} }

type module string

const (
	modKafka    module = "kafka"    // embedded broker when asked for, and the topics
	modStore    module = "store"    // PostgreSQL pool and migrations
	modCache    module = "cache"    // Redis
	modProducer module = "producer" // ingest API + Kafka producer
	modConsumer module = "consumer" // consumer group member
	modGateway  module = "gateway"  // query API
	modAll      module = "all"
)

// dependencies is the static module graph.
func dependencies() map[module][]module {
	return map[module][]module{
		modKafka:    nil,
		modStore:    nil,
		modCache:    nil,
		modProducer: {modKafka},
		modConsumer: {modKafka, modStore, modCache},
		modGateway:  {modStore, modCache},
		modAll:      {modProducer, modConsumer, modGateway},
	}
}

// ParseRoles validates a comma list of roles.
func ParseRoles(s string) ([]Role, error) {
	var out []Role
	for _, p := range strings.Split(s, ",") {
		r := Role(strings.ToLower(strings.TrimSpace(p)))
		switch r {
		case "":
			continue
		case RoleAll:
			return servingRoles(), nil
		case RoleProducer, RoleConsumer, RoleGateway:
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		default:
			return nil, fmt.Errorf("--role: unknown role %q; use all, or a comma list of producer, consumer, gateway", p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--role: no role given; use all, or a comma list of producer, consumer, gateway")
	}
	slices.SortFunc(out, func(a, b Role) int { return slices.Index(servingRoles(), a) - slices.Index(servingRoles(), b) })
	return out, nil
}

// startOrder returns the modules the roles need, each after its dependencies.
func startOrder(roles []Role) []module {
	deps := dependencies()
	var order []module
	seen := map[module]bool{}
	var visit func(m module)
	visit = func(m module) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, r := range roles {
		visit(module(r))
	}
	return order
}

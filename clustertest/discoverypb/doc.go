// Package discoverypb holds the generated protocol buffer and gRPC code used
// by clustertest: the discovery master's ClusterDiscoveryService
// (package rampart.cluster.discovery.v1, discovery.proto) and the Echo test
// service every node serves (package rampart.cluster.echo.v1, echo.proto).
//
// Do not edit the generated files. Regenerate them from this directory, with
// protoc, protoc-gen-go and protoc-gen-go-grpc on PATH, by running
// `go generate`, which runs:
//
//	protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative discovery.proto echo.proto
package discoverypb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative discovery.proto echo.proto

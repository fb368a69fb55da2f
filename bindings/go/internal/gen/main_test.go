package main

import (
	"bytes"
	"os"
	"testing"
)

// The checked-in status_gen.go is what the generator makes from the header: a status added to
// the header fails here until `go generate` runs.
func TestGeneratedFileIsCurrent(t *testing.T) {
	header, err := os.ReadFile("../../../../include/rmqstream.h")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(header)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../status_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("status_gen.go is stale: run `go generate` in bindings/go")
	}
}

func TestGoName(t *testing.T) {
	for macro, want := range map[string]string{
		"RMQS_OK": "OK", "RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK": "SASLAuthenticationFailureLoopback",
		"RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS": "SubscriptionIDAlreadyExists", "RMQS_ERR_IO": "IO",
		"RMQS_ERR_NOT_CONFIRMED": "NotConfirmed",
	} {
		if got := goName(macro); got != want {
			t.Errorf("goName(%s) = %s, want %s", macro, got, want)
		}
	}
}

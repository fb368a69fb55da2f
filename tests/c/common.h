/*
 * Shared by the C tests (C11 and, through the _cxx variants, C++17) and the C++ test: counting
 * checks (CHECK, CHECK_OK, CHECK_STR), the broker's URI, unique names, a counting
 * user_data_free and the final report line "NAME: P passed, F failed" that ctest matches.
 * Include it first: it selects POSIX (getpid) before any system header.
 */
#ifndef RMQS_TESTS_COMMON_H
#define RMQS_TESTS_COMMON_H

#if !defined(_POSIX_C_SOURCE) && !defined(__cplusplus)
#define _POSIX_C_SOURCE 200809L
#endif
#include "rmqstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed;
static int failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

/* Checks that a call returns RMQS_OK; prints the status name otherwise. */
#define CHECK_OK(call)                                                                         \
    do {                                                                                       \
        rmqs_status st_ = (call);                                                              \
        if (st_ == RMQS_OK) {                                                                  \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            fprintf(stderr, "%s:%d: %s returned %s (%d)\n", __FILE__, __LINE__, #call,         \
                    rmqs_status_name(st_), (int)st_);                                          \
        }                                                                                      \
    } while (0)

/* Checks that a string equals the expected one (NULL never does). */
#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *got_ = (got);                                                              \
        const char *want_ = (want);                                                            \
        if (got_ != NULL && strcmp(got_, want_) == 0) {                                        \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,      \
                    #got, got_ ? got_ : "(null)", want_);                                      \
        }                                                                                      \
    } while (0)

/* The broker: RMQS_TEST_URI, else the single broker of scripts/broker. */
static inline const char *test_uri(void) {
    const char *u = getenv("RMQS_TEST_URI");
    return u != NULL && *u != '\0' ? u : "rabbitmq-stream://guest:guest@localhost:5552/%2f";
}

/* "PREFIX-<pid>-<seconds>" into buf: a name no other test run uses. */
static inline void unique_name(char *buf, size_t cap, const char *prefix) {
    snprintf(buf, cap, "%s-%ld-%ld", prefix, (long)getpid(), (long)time(NULL));
}

/* A user_data_free that counts its calls: user_data points to an int, or to a struct whose
 * first member is the int. */
static inline void count_free(void *user_data) {
    ++*(int *)user_data;
}

/* Prints the line ctest matches; the exit status: 0 when nothing failed. */
static inline int report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif

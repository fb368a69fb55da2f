# Smoke runs of rmqs-perf against the broker; pass/fail by the exact counts of its JSON summary
# (exit status too), never by timings. -DPERF=<program> -DCOUNT=<messages> -DJSON=<file>.
function(perf_run label expect_consumed)
    file(REMOVE "${JSON}")
    execute_process(COMMAND "${PERF}" ${ARGN} --json "${JSON}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "perf-smoke ${label}: rmqs-perf exited with ${rc}")
    endif()
    file(READ "${JSON}" js)
    foreach(check "published\": ${COUNT}," "confirmed\": ${COUNT}," "failed\": 0,"
                  "consumed\": ${expect_consumed}," "wrong_size\": 0," "ok\": true")
        string(FIND "${js}" "\"${check}" at)
        if(at EQUAL -1)
            message(FATAL_ERROR "perf-smoke ${label}: expected \"${check} in\n${js}")
        endif()
    endforeach()
    # percentiles come from a histogram holding every confirm and every delivery
    foreach(check "confirm_latency_ms\": {\"count\": ${COUNT},"
                  "e2e_latency_ms\": {\"count\": ${expect_consumed},")
        string(FIND "${js}" "\"${check}" at)
        if(at EQUAL -1)
            message(FATAL_ERROR "perf-smoke ${label}: expected \"${check} in\n${js}")
        endif()
    endforeach()
endfunction()

# every message consumed once: 2 consumers over 2 streams, each on the stream of one producer
perf_run(streams ${COUNT} --producers 2 --consumers 2 --streams 2 --count ${COUNT} --size 64)
# a super stream of 3 partitions, named producer, sub-entries of 10 with zstd; 2 super
# consumers each read every partition: every message twice
math(EXPR twice "${COUNT} * 2")
perf_run(super ${twice} --super-stream --partitions 3 --producers 1 --consumers 2
         --count ${COUNT} --producer-name perf-smoke --sub-entry-size 10 --compression zstd
         --rate 100000)
message("perf-smoke: ok")

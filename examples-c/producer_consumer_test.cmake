# ctest driver (cmake -P) for the producer and consumer examples, against the broker of
# RMQS_TEST_URI (else DEFAULT_URI), on a stream of its own:
#
#   1. producer -n NAME: COUNT messages; a new name starts after publishing id 0
#   2. producer -n NAME again: COUNT/2 more, continuing after the id the broker kept (COUNT)
#   3. consumer from first, 2/3 of the messages: offsets 0..K-1, stores K-1
#   4. consumer again, the rest: resumes at K (the stored offset + 1), offsets K..total-1,
#      and deletes the stream
#
# Inputs: PRODUCER, CONSUMER (executables), COUNT, DEFAULT_URI. Prints "producer-consumer: ok".
cmake_minimum_required(VERSION 3.16)

if(DEFINED ENV{RMQS_TEST_URI} AND NOT "$ENV{RMQS_TEST_URI}" STREQUAL "")
    set(uri "$ENV{RMQS_TEST_URI}")
else()
    set(uri "${DEFAULT_URI}")
endif()
string(RANDOM LENGTH 10 ALPHABET "abcdefghijklmnopqrstuvwxyz0123456789" tag)
set(stream "c-example-${tag}")
set(name "c-example-producer")
set(reference "c-example-consumer")
math(EXPR second "${COUNT} / 2")
math(EXPR total "${COUNT} + ${second}")
math(EXPR first_read "${total} * 2 / 3")
math(EXPR first_last "${first_read} - 1")
math(EXPR rest "${total} - ${first_read}")
math(EXPR total_last "${total} - 1")

# run(<label> <expected regex>... -- <command...>): runs, echoes, checks exit status and output.
function(run label)
    set(expect "")
    set(cmd "")
    set(in_cmd FALSE)
    foreach(a IN LISTS ARGN)
        if(in_cmd)
            list(APPEND cmd "${a}")
        elseif(a STREQUAL "--")
            set(in_cmd TRUE)
        else()
            list(APPEND expect "${a}")
        endif()
    endforeach()
    string(JOIN " " shown ${cmd})
    message("---- ${label}: ${shown}")
    execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                    TIMEOUT 120)
    message("${out}${err}")
    if(NOT rc EQUAL 0)
        cleanup()
        message(FATAL_ERROR "producer-consumer: ${label} failed (exit status ${rc})")
    endif()
    foreach(re IN LISTS expect)
        if(NOT out MATCHES "${re}")
            cleanup()
            message(FATAL_ERROR "producer-consumer: ${label}: no match for '${re}'")
        endif()
    endforeach()
endfunction()

function(cleanup)
    execute_process(COMMAND "${CONSUMER}" -D -t 1 "${uri}" "${stream}" next 0
                    OUTPUT_QUIET ERROR_QUIET TIMEOUT 30)
endfunction()

run("producer, new name"
    "created stream ${stream}" "producer ${name} is new to the stream"
    "${COUNT} confirmed, 0 failed" "last publishing id ${COUNT}\n"
    -- "${PRODUCER}" -n "${name}" "${uri}" "${stream}" ${COUNT} 100)
run("producer, same name again"
    "producer ${name} continues after publishing id ${COUNT}\n"
    "${second} confirmed, 0 failed" "last publishing id ${total}\n"
    -- "${PRODUCER}" -n "${name}" "${uri}" "${stream}" ${second} 100)
run("consumer, first run"
    "reference ${reference}: no stored offset, starting at first"
    "consumed ${first_read} messages, offsets 0\\.\\.${first_last},"
    "stored offset ${first_last} for reference ${reference}"
    -- "${CONSUMER}" -n "${reference}" -t 30 "${uri}" "${stream}" first ${first_read})
run("consumer, second run resumes"
    "reference ${reference}: stored offset ${first_last}, resuming at ${first_read}\n"
    "consumed ${rest} messages, offsets ${first_read}\\.\\.${total_last},"
    "stored offset ${total_last} for reference ${reference}" "deleted stream ${stream}"
    -- "${CONSUMER}" -n "${reference}" -t 30 -D "${uri}" "${stream}" first ${rest})
message("producer-consumer: ok")

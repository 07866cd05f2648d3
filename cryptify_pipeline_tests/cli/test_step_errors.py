"""A failed step's own error, read from real step failures of in-process runs."""

from dagster import Failure, asset, materialize

from cryptify_pipeline.cli.step_errors import own_error, serializable_chain


class CandleError(RuntimeError):
    pass


def step_error(raising) -> str:
    result = materialize([asset(name="candles")(raising)], raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    return own_error(serializable_chain(failure.event_specific_data.error))


def test_a_failure_is_its_description_and_other_errors_keep_their_class():
    def fails():
        raise Failure("need at least 124 rows\nbackfill more history", allow_retries=False)

    def raises():
        raise CandleError("BTC/USDT 2025-01-05 10:00: high below close")

    def raises_from():
        try:
            {}["symbol"]
        except KeyError as error:
            raise Failure("no symbol column") from error

    assert step_error(fails) == "need at least 124 rows\nbackfill more history"
    assert step_error(raises) == "CandleError: BTC/USDT 2025-01-05 10:00: high below close"
    assert step_error(raises_from) == "no symbol column"  # its cause is detail, not the reason


def test_dagster_wrappers_that_say_more_than_the_step_are_kept():
    chain = [
        (
            "DagsterExecutionHandleOutputError",
            "dagster._core.errors.DagsterExecutionHandleOutputError: Error occurred while "
            'handling output "result" of step "candles":\n',
        ),
        ("OperationalError", "psycopg2.OperationalError: connection refused\n"),
    ]
    assert own_error(chain) == (
        'Error occurred while handling output "result" of step "candles": '
        "OperationalError: connection refused"
    )
    assert own_error([("DagsterExecutionStepExecutionError", "Error occurred")]) == (
        "DagsterExecutionStepExecutionError: Error occurred"
    )
    assert own_error([(None, "something")]) == "something"

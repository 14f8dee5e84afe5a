"""The `jaxal` command: one work directory, one step per subcommand.

    command         each flag defined once, the subcommands, exit status (2 and
                    one line for input jaxal cannot use, `jaxal.errors.InputError`)
    workdir         the work directory: recorded settings, the embedded pool
    labels          classes files and labels CSVs, errors by FILE:LINE
    embed           jaxal embed: M_S over an image folder or a TFDS split
    select_balance  jaxal select / balance: acquisition, rounds, the balancing step
    train_predict   jaxal train / predict: the target model and its predictions
    report          jaxal report: classes found, imbalance ratio, ACC_t

The console script is `jaxal.cli.command:run` (also `python -m jaxal`). The
command sits on top: it may import every other part of jaxal, and none imports it.
"""

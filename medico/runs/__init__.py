"""The run lifecycle: config layers and the typed command-line options (:mod:`.config`), the run folder and its
layout (:mod:`.folder`), the data and split a run used (:mod:`.dataset`), checkpoints, the run record, planning,
training and finishing a run (:mod:`.experiment`) and sweeps over folds and seeds."""

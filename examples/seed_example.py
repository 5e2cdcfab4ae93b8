# The example of deucalion's original README, unchanged below the marked line. The seed leaves
# `pm` (the model's module) to the reader; here it is a small stand-in from this folder.
# Point it at an exporter with a config file:
#   DEUCALION_CONFIG=examples/sidecar.yaml python examples/seed_example.py
# --- the seed's example, as written ----------------------------------------------------------
from typing import Any, Dict, Set

import stand_in_model as pm

import deucalion as dc


class SomeAnomalyDetectionMetricsObserver(dc.MetricsObserver):
    def new_data(self, targets_data_dict: Dict[str, Dict[str, Any]]):
        if len(targets_data_dict):
            for target in targets_data_dict:
                pred = self.model.predict(targets_data_dict[target])
                print(target + ': ' + str(targets_data_dict[target]) + ', anomaly score: ' + str(pred))

        return None

    def __init__(self, model, desired_metrics: Set[str]):
        super().__init__(desired_metrics)
        self.model = model


if __name__ == '__main__':
    myObserver = SomeAnomalyDetectionMetricsObserver(pm.load(), {
        'go_goroutines',
        'go_gc_heap_allocs_by_size_bytes_total_bucket',
        'node_cpu_seconds_total'
    })
    provisioner = dc.MetricsProvisioner()
    provisioner.register(metricsObserver=myObserver)
    provisioner.run()

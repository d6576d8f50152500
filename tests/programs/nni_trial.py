"""NNI trial code as NNI's docs write it (https://nni.readthedocs.io/en/stable/hpo/quickstart_pytorch.html):
params from nni.get_next_parameter(), an intermediate result per epoch, a final result at the end
(here a test accuracy that differs from the last epoch's). Run by scalehp unchanged, with
command.client: nni (no NNI manager)."""

import nni


def main():
    params = {"lr": 0.1, "epochs": 3, "layer": {"_name": "Empty"}}
    params.update(nni.get_next_parameter())
    layer = params["layer"]
    bonus = 0.01 * layer.get("kernel_size", 0) if layer["_name"] == "Conv" else 0.0
    accuracy = 0.0
    for epoch in range(1, params["epochs"] + 1):
        accuracy = 1 - params["lr"] / epoch + bonus
        nni.report_intermediate_result(accuracy)
    nni.report_final_result({"default": accuracy + 0.005, "test_loss": 0.25})


if __name__ == "__main__":
    main()

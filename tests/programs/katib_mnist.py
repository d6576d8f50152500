"""A training program that prints as Katib's pytorch-mnist example does
(examples/v1beta1/trial-images/pytorch-mnist/mnist.py in github.com/kubeflow/katib): a
"Train Epoch: N [seen/total (pct%)]\tloss=..." line every few batches, and after each epoch a
"{metricName: accuracy, metricValue: ...};{metricName: loss, metricValue: ...}" line. It trains
--num-epochs epochs; the accuracy after epoch e is ``1 - lr / e - (momentum - 0.5)**2``."""

import argparse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--num-epochs", type=int, default=1)
    args = parser.parse_args()
    for epoch in range(1, args.num_epochs + 1):
        for seen in range(0, 60000, 12000):
            print(f"Train Epoch: {epoch} [{seen}/60000 ({100 * seen / 60000:.0f}%)]\tloss={2.3 / (epoch + seen / 60000):.4f}", flush=True)
        accuracy = 1 - args.lr / epoch - (args.momentum - 0.5) ** 2
        print(f"{{metricName: accuracy, metricValue: {accuracy:.4f}}};{{metricName: loss, metricValue: {1 - accuracy:.4f}}}", flush=True)


if __name__ == "__main__":
    main()

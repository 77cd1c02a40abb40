"""The AWS stacks: their order, parameters and outputs; the AWS CLI; preflight, restore."""

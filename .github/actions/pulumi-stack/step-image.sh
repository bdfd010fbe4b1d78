#!/usr/bin/env bash
# Pushes the step image (pipelines/image) under every tag a stack's models name
# (models.<name>.image_tag in stacks/Pulumi.<stack>.yaml), to the URI its pipeline definitions
# use (pipelines.context.context_for_stack(...).image_uri), wherever the ECR repository lacks
# it. The repositories have immutable tags (SECURITY.md A3): a tag is built and pushed once,
# and a changed image needs a new tag in the stack file. The step code is not in the image:
# `pulumi up` uploads it to S3 under its content hash (components/step_code.py).
#
#   step-image.sh <stack> before-up   a repository not created yet (first deployment) waits
#   step-image.sh <stack> after-up    every repository must exist by now
#
# Needs .venv, AWS credentials for the stack's account (ecr:DescribeRepositories,
# ecr:DescribeImages, ecr:GetAuthorizationToken, and push on the repository) and Docker.
set -euo pipefail
stack=$1
phase=$2

uris=$(.venv/bin/python - "$stack" <<'PY'
import sys

from pipelines.context import context_for_stack
from stacks.loader import load_stack_settings

stack = sys.argv[1]
settings = load_stack_settings(stack)
for uri in sorted({context_for_stack(stack, m, settings=settings).image_uri for m in settings.models}):
    print(uri)
PY
)

# `found <ExceptionName> <aws args...>`: 0 when the call succeeds, 1 when it fails with that
# exception; any other failure (no access, throttling) stops the script with AWS's message.
found() {
  local missing=$1 err
  shift
  if err=$(aws "$@" 2>&1 >/dev/null); then
    return 0
  fi
  if grep -q "$missing" <<<"$err"; then
    return 1
  fi
  echo "$err" >&2
  exit 1
}

built=""
for uri in $uris; do
  registry=${uri%%/*}            # <account>.dkr.ecr.<region>.amazonaws.com
  path=${uri#*/}
  repository=${path%:*}          # mlops-<stack>/training
  tag=${path##*:}
  region=$(cut -d. -f4 <<<"$registry")

  if ! found RepositoryNotFoundException ecr describe-repositories \
    --region "$region" --repository-names "$repository"; then
    if [ "$phase" = before-up ]; then
      echo "::notice::$repository does not exist yet: the step image goes there after pulumi up creates it"
      continue
    fi
    echo "::error::ECR repository $repository does not exist after pulumi up"
    exit 1
  fi
  if found ImageNotFoundException ecr describe-images \
    --region "$region" --repository-name "$repository" --image-ids "imageTag=$tag"; then
    echo "$uri is there (tags are immutable: a changed image needs a new image_tag)"
    continue
  fi

  if [ -z "$built" ]; then
    # SageMaker's GPU and CPU instances run x86_64 images.
    docker build --pull --platform linux/amd64 --tag step-image:build \
      --label "org.opencontainers.image.source=$GITHUB_SERVER_URL/$GITHUB_REPOSITORY" \
      --label "org.opencontainers.image.revision=$GITHUB_SHA" \
      pipelines/image
    built=yes
  fi
  aws ecr get-login-password --region "$region" |
    docker login --username AWS --password-stdin "$registry"
  docker tag step-image:build "$uri"
  docker push "$uri"
  echo "::notice::pushed $uri"
done

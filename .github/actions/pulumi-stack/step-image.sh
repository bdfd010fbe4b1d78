#!/usr/bin/env bash
# Pushes the two images under every tag a stack's models name, to the URIs the pipeline
# definitions use, wherever the ECR repository lacks them:
#   step       pipelines/image (context pipelines/image): models.<name>.image_tag, the
#              `training` repository (context_for_stack(...).image_uri)
#   inference  pipelines/image/inference/Dockerfile (context pipelines/, the scoring code is
#              baked in): models.<name>.inference_image_tag, the `inference` repository
#              (context_for_stack(...).inference_image_uri)
#   cpu        pipelines/image/cpu (the Deploy and Monitor steps of deployed models):
#              `<image_tag>-cpu` in the `training` repository (...cpu_image_uri) The repositories have immutable tags (SECURITY.md A3): a tag is built and pushed once,
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

# One "<kind> <uri>" line per image the stack's definitions name.
images=$(.venv/bin/python - "$stack" <<'PY'
import sys

from pipelines.context import context_for_stack
from stacks.loader import load_stack_settings

stack = sys.argv[1]
settings = load_stack_settings(stack)
found = set()
for model in settings.models:
    context = context_for_stack(stack, model, settings=settings)
    found |= {("step", context.image_uri), ("inference", context.inference_image_uri)}
    if settings.models[model].deployment is not None:
        found.add(("cpu", context.cpu_image_uri))
for kind, uri in sorted(found):
    print(kind, uri)
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

# `build <kind>`: the image of that kind, once per run, tagged <kind>-image:build.
built=""
build() {
  local kind=$1
  case " $built " in *" $kind "*) return 0;; esac
  local args=(--pull --platform linux/amd64 --tag "$kind-image:build"
    --label "org.opencontainers.image.source=$GITHUB_SERVER_URL/$GITHUB_REPOSITORY"
    --label "org.opencontainers.image.revision=$GITHUB_SHA")
  # SageMaker's GPU and CPU instances run x86_64 images.
  case "$kind" in
    inference) docker build "${args[@]}" -f pipelines/image/inference/Dockerfile pipelines ;;
    cpu) docker build "${args[@]}" pipelines/image/cpu ;;
    *) docker build "${args[@]}" pipelines/image ;;
  esac
  built="$built $kind"
}

# The list comes in on fd 3: docker and aws may read stdin.
while read -r kind uri <&3; do
  [ -n "$uri" ] || continue
  registry=${uri%%/*}            # <account>.dkr.ecr.<region>.amazonaws.com
  path=${uri#*/}
  repository=${path%:*}          # mlops-<stack>/training
  tag=${path##*:}
  region=$(cut -d. -f4 <<<"$registry")

  if ! found RepositoryNotFoundException ecr describe-repositories \
    --region "$region" --repository-names "$repository"; then
    if [ "$phase" = before-up ]; then
      echo "::notice::$repository does not exist yet: the $kind image goes there after pulumi up creates it"
      continue
    fi
    echo "::error::ECR repository $repository does not exist after pulumi up"
    exit 1
  fi
  if found ImageNotFoundException ecr describe-images \
    --region "$region" --repository-name "$repository" --image-ids "imageTag=$tag"; then
    echo "$uri is there (tags are immutable: a changed image needs a new tag in the stack file)"
    continue
  fi

  build "$kind"
  aws ecr get-login-password --region "$region" |
    docker login --username AWS --password-stdin "$registry"
  docker tag "$kind-image:build" "$uri"
  docker push "$uri"
  echo "::notice::pushed $uri"
done 3<<<"$images"

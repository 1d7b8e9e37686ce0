resource "terraform_data" "kept" {
  input = "v1"
}
resource "terraform_data" "updated" {
  input = "v2"
}
resource "terraform_data" "replaced" {
  input            = "v1"
  triggers_replace = ["b"]
}
resource "terraform_data" "created" {
  input = "new"
}
